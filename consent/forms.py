"""Forms of the consent lifecycle's admin actions (approve, reject, revoke, legal hold)."""

from __future__ import annotations

from django import forms
from django.utils import timezone

from consent.models import RevocationChannel


class ApproveForm(forms.Form):
    note = forms.CharField(
        label="Review note", required=False, widget=forms.Textarea(attrs={"rows": 3})
    )


class RejectForm(forms.Form):
    reason = forms.CharField(
        label="Why is it rejected?",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Onboarding staff read this to make a corrected version.",
    )


class RevokeForm(forms.Form):
    channel = forms.ChoiceField(
        label="How did the person revoke their consent?", choices=RevocationChannel
    )
    requested_at = forms.DateTimeField(
        label="When did they ask?",
        required=False,
        help_text="Leave empty for now. Format: 2026-11-27 14:30.",
    )
    reason = forms.CharField(
        label="Reason given",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Their words, or “none given”.",
    )

    def clean_requested_at(self):
        requested_at = self.cleaned_data["requested_at"]
        if requested_at and requested_at > timezone.now():
            raise forms.ValidationError("The revocation cannot have been asked for in the future.")
        return requested_at


class LegalHoldForm(forms.Form):
    note = forms.CharField(
        label="Why?",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The matter, the request or the decision: kept with the person and in the "
        "audit trail.",
    )
