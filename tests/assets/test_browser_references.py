"""The references page in Chromium: both copy buttons, the ledger rows they write, a content array.

With ``SAVE_SCREENSHOTS=1`` the page is saved to ``docs/screenshots/references.png``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.utils import timezone
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from assets.models import Asset, ReferenceCopy
from consent.models import ConsentRecord
from sandbox.samples import make_image, make_video
from tests.factories import AssetGroupFactory, PersonFactory, UsableAssetFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery staple"
PROJECT = "Spring campaign 2027"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def page(browser: Browser, live_server) -> Iterator[Page]:
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 1400, "height": 1100}
    )
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _clipboard(page: Page) -> str:
    return str(page.evaluate("navigator.clipboard.readText()"))


def _row(page: Page, asset: Asset):
    return page.locator(f'tr[data-asset-id="{asset.pk}"]')


def _people() -> dict[str, list[Asset]]:
    """Ada: two portraits, four videos, a voice clip; Grace: one portrait."""
    ada = PersonFactory(display_name="Ada", legal_name="Ada Lovelace")
    group = AssetGroupFactory(person=ada)
    first = UsableAssetFactory(
        group=group,
        consent__covers_audio=True,
        consent__uses=[PROJECT, "Autumn trailer"],
        file=ContentFile(make_image(face="ada", label="front", fmt="PNG"), name="a.png"),
    )
    consent = first.consent

    def more(kind: str, content: bytes, content_type: str) -> Asset:
        return UsableAssetFactory(
            group=group,
            consent=consent,
            kind=kind,
            content_type=content_type,
            file=ContentFile(content, name="upload"),
        )

    images = [first, more("image", make_image(face="ada", label="side", fmt="JPEG"), "image/jpeg")]
    videos = [
        more("video", make_video(width=320, height=480, seconds=2.0, face="ada"), "video/mp4")
        for _ in range(4)
    ]
    audio = [more("audio", b"RIFF voice", "audio/wav")]
    grace = PersonFactory(display_name="Grace", legal_name="Grace Hopper")
    grace_image = UsableAssetFactory(
        group=AssetGroupFactory(person=grace),
        file=ContentFile(make_image(face="grace", fmt="PNG"), name="g.png"),
    )
    return {"images": images, "videos": videos, "audio": audio, "grace": [grace_image]}


def _log_in(page: Page) -> None:
    producer = UserFactory(username="producer")
    producer.user_permissions.add(Permission.objects.get(codename="view_references"))
    page.goto("/references/")  # sent to the admin's login page, then back
    page.fill("#id_username", "producer")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    expect(page.locator("h1")).to_have_text("References for Seedance 2.0")


def test_producer_copies_a_reference_an_item_and_an_array_and_each_copy_is_recorded(page: Page):
    violations: list[str] = []

    def seen(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", seen)
    assets = _people()
    portrait, side = assets["images"]
    _log_in(page)
    status = page.locator("[data-status]")
    expect(page.locator("tr[data-asset-id]")).to_have_count(8)
    # Previews are small JPEGs made for the page (the audio clip has an icon).
    preview = _row(page, portrait).locator("img")
    preview.scroll_into_view_if_needed()  # previews load lazily, as the producer scrolls
    expect(preview).to_have_js_property("complete", True)
    assert preview.evaluate("img => img.naturalWidth") > 0
    assert "/references/thumbnails/" in str(preview.get_attribute("src"))

    # No project stated: nothing is copied, nothing recorded.
    _row(page, portrait).get_by_role("button", name="Copy reference").click()
    expect(status).to_contain_text("Choose the project you are copying for first")
    assert not ReferenceCopy.objects.exists()

    _row(page, portrait).locator("[data-project]").select_option(PROJECT)
    _row(page, portrait).get_by_role("button", name="Copy reference").click()
    expect(status).to_contain_text("the copy is recorded")
    assert _clipboard(page) == portrait.asset_uri
    copy = ReferenceCopy.objects.get()
    assert (copy.user.username, copy.asset_id, copy.project, copy.kind) == (
        "producer",
        portrait.pk,
        PROJECT,
        "reference",
    )

    _row(page, portrait).locator("[data-project]").select_option("Autumn trailer")
    _row(page, portrait).get_by_role("button", name="Copy content item").click()
    expect(status).to_contain_text("Copied the Seedance 2.0 content item for Autumn trailer")
    assert json.loads(_clipboard(page)) == {
        "type": "image_url",
        "image_url": {"url": portrait.asset_uri},
        "role": "reference_image",
    }
    latest = ReferenceCopy.objects.order_by("-pk").first()
    assert latest is not None
    assert (latest.kind, latest.project) == ("content_item", "Autumn trailer")

    # A selection: audio alone is refused; three videos are the most one request takes.
    array_button = page.get_by_role("button", name="Copy content array")
    voice = assets["audio"][0]
    _row(page, voice).locator("[data-select]").check()
    expect(page.locator("[data-selection-problem]")).to_contain_text(
        "Audio cannot be the only reference"
    )
    expect(array_button).to_be_disabled()
    videos = assets["videos"]
    for video in videos[:3]:
        _row(page, video).locator("[data-select]").check()
    expect(_row(page, videos[3]).locator("[data-select]")).to_be_disabled()
    expect(page.locator("[data-selection-problem]")).to_contain_text(
        "3 reference videos selected: the most one Seedance 2.0 request takes"
    )
    _row(page, side).locator("[data-select]").check()
    _row(page, portrait).locator("[data-select]").check()
    expect(page.locator("[data-selection-count]")).to_have_text(
        "Selected: 2 of 9 images, 3 of 3 videos, 1 of 3 audio clips."
    )
    expect(array_button).to_be_enabled()
    page.locator("[data-selection-project]").select_option(PROJECT)
    if os.environ.get("SAVE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "references.png", full_page=True)
    array_button.click()
    expect(status).to_contain_text("Copied the Seedance 2.0 content array (6 references)")
    content = json.loads(_clipboard(page))
    urls = [item[item["type"]]["url"] for item in content]
    roles = [item["role"] for item in content]
    # Images (the side view was selected first), then videos, then audio.
    expected = [side, portrait, *videos[:3], voice]
    assert urls == [asset.asset_uri for asset in expected]
    assert roles == ["reference_image"] * 2 + ["reference_video"] * 3 + ["reference_audio"]
    array_rows = ReferenceCopy.objects.filter(kind="content_array")
    assert sorted(array_rows.values_list("asset_id", flat=True)) == sorted(
        [side.pk, portrait.pk, voice.pk, *(video.pk for video in videos[:3])]
    )
    assert set(array_rows.values_list("project", flat=True)) == {PROJECT}

    # Grace revokes her consent while the page is open: her reference can no longer be copied.
    grace = assets["grace"][0]
    ConsentRecord.objects.filter(pk=grace.consent_id).update(
        status=ConsentRecord.Status.REVOKED, revoked_at=timezone.now()
    )
    _row(page, grace).locator("[data-project]").select_option(PROJECT)
    _row(page, grace).get_by_role("button", name="Copy reference").click()
    expect(status).to_contain_text(f"Asset #{grace.pk} can no longer be used: its consent is")
    expect(status).not_to_contain_text("Grace")  # nor the reference: the row says which
    expect(_row(page, grace)).to_have_class("ref-unusable")
    assert not ReferenceCopy.objects.filter(asset=grace).exists()
    assert _clipboard(page) != grace.asset_uri
    page.reload()
    expect(page.locator("tr[data-asset-id]")).to_have_count(7)
    assert violations == []
