"""Consent texts and drafts awaiting an electronic signature, for the signing tests."""

from __future__ import annotations

from typing import Any

from consent.models import ConsentRecord, ConsentTemplate, ConsentTemplateVersion, Language
from consent.template_versions import template_version_publish
from tests.factories import ConsentRecordFactory, PersonFactory, UserFactory

ENGLISH_TEXT = (
    "Likeness release.\n\nI allow The studio to use my likeness for the uses listed below.\n"
    "Biometric data notice: a face scan (face geometry) is collected to verify I am a real "
    "person; it is kept no longer than needed and destroyed within three years.\n"
    "Retention: files are destroyed when this consent ends.\n"
)
CHINESE_TEXT = (
    "肖像授權書。\n\n本人同意工作室按下列用途使用本人的肖像。\n"
    "生物特徵資料告知：為確認本人身分，將採集臉部特徵。\n"  # noqa: RUF001 (Chinese punctuation)
)


def published_version(
    *, text: str = ENGLISH_TEXT, language: str = Language.ENGLISH, **fields: Any
) -> ConsentTemplateVersion:
    template, _ = ConsentTemplate.objects.get_or_create(name="Likeness release")
    version = ConsentTemplateVersion.objects.create(
        template=template,
        version=fields.pop("version", "2026-12"),
        language=language,
        text=text,
        notices=fields.pop("notices", ["biometric", "retention"]),
        **fields,
    )
    return template_version_publish(version=version, actor=UserFactory(username="legal"))


def draft_awaiting_signature(
    version: ConsentTemplateVersion | None = None, **person_fields: Any
) -> ConsentRecord:
    """A complete e-signature draft (a specific use, representation, prohibited uses) that
    picked ``version``: all it lacks is the person's signature."""
    person = PersonFactory(**{"legal_name": "Ada Moreau", "display_name": "Ada", **person_fields})
    return ConsentRecordFactory(
        person=person,
        template_version=version or published_version(),
        capture_method=ConsentRecord.CaptureMethod.E_SIGNATURE,
        representation=ConsentRecord.Representation.UNION,
        representative_name="SAG-AFTRA local 1",
        prohibited_uses="Political, adult or endorsement content.",
        uses=1,
    )
