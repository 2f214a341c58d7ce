"""``manage.py import_assets``: a folder of real files (Pillow, PyAV), each with its verdict."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from assets.models import Asset
from sandbox.samples import make_audio, make_image, make_video
from tests import media_corpus
from tests.factories import AssetGroupFactory, ConsentRecordFactory, PersonFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def shoot(tmp_path: Path) -> Path:
    """A shoot day's folder: a portrait, a video, a damaged one, a tiny one, a voice clip, and a
    picture in which the local pre-check finds no face."""
    folder = tmp_path / "shoot"
    folder.mkdir()
    (folder / "front.jpg").write_bytes(media_corpus.face_picture(1, width=900, height=1200))
    (folder / "back.jpg").write_bytes(make_image(width=1200, height=1600, fmt="JPEG"))
    (folder / "turn.mp4").write_bytes(make_video(width=480, height=854, seconds=2.5, fps=24))
    (folder / "cut.jpg").write_bytes(make_image(width=1200, height=1600, fmt="JPEG")[:40])
    (folder / "tiny.png").write_bytes(make_image(width=200, height=600, fmt="PNG"))
    (folder / "voice.wav").write_bytes(make_audio(seconds=2.5))
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: not a shoot file
    return folder


def run(*args: str) -> tuple[str, CommandError | None]:
    out = io.StringIO()
    try:
        call_command("import_assets", *args, stdout=out)
    except CommandError as error:
        return out.getvalue(), error
    return out.getvalue(), None


def summary_rows(output: str) -> dict[str, str]:
    """The summary table's first line per file: ``{file: the rest of the line}``."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if len(cells) == 3 and cells[0] and cells[1] in ("queued", "refused"):
            rows[cells[0]] = f"{cells[1]} {cells[2]}"
    return rows


def test_a_folder_is_imported_file_by_file_and_any_refusal_fails_the_command(shoot: Path):
    group = AssetGroupFactory(verified=True)  # consent: images and video, not audio

    output, error = run("--person", str(group.person.pk), str(shoot))

    assert error is not None and str(error) == "3 of 6 files were refused."
    rows = summary_rows(output)
    assert set(rows) == {"front.jpg", "back.jpg", "turn.mp4", "cut.jpg", "tiny.png", "voice.wav"}
    assert rows["front.jpg"] == "queued —"
    # A warning, not a refusal: the upstream's own face check decides.
    assert rows["back.jpg"].startswith("queued warning: No face was found in this picture.")
    assert rows["turn.mp4"] == "queued —"
    assert rows["cut.jpg"].startswith("refused")
    assert rows["tiny.png"].startswith("refused The image is 200 × 600 px")  # noqa: RUF001
    assert rows["voice.wav"].startswith("refused")
    assert "covers audio" in output
    assert "3 file(s) queued for upload, 3 refused." in output
    assert "Import summary" in output
    assert sorted(Asset.objects.values_list("original_filename", "status")) == [
        ("back.jpg", "queued"),
        ("front.jpg", "queued"),
        ("turn.mp4", "queued"),
    ]


def test_a_clean_import_exits_zero_with_the_consent_given(tmp_path: Path):
    group = AssetGroupFactory(verified=True)
    consent = ConsentRecordFactory(person=group.person, approved=True, covers_audio=True)
    (tmp_path / "voice.wav").write_bytes(make_audio(seconds=2.5))
    (tmp_path / "front.png").write_bytes(make_image(width=400, height=600, fmt="PNG"))
    person, chosen = str(group.person.pk), str(consent.pk)

    output, error = run("--person", person, "--consent", chosen, str(tmp_path))

    assert error is None
    assert "2 file(s) queued for upload, 0 refused." in output
    assert set(Asset.objects.values_list("consent", flat=True)) == {consent.pk}


def test_a_person_without_verification_gets_every_file_refused_with_the_reason(shoot: Path):
    person = PersonFactory()

    output, error = run("--person", str(person.pk), str(shoot))

    assert error is not None
    assert output.count("has no verified real-person group") >= 1
    assert not Asset.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--person", "999999", "."], "There is no person with id 999999."),
        (["--person", "{person}", "--consent", "999999", "."], "There is no consent record"),
        (["--person", "{person}", "/no/such/folder"], "/no/such/folder is not a folder."),
    ],
)
def test_wrong_arguments_are_refused_before_anything_is_read(args, message):
    person = PersonFactory()

    with pytest.raises(CommandError, match=message):
        call_command("import_assets", *[arg.format(person=person.pk) for arg in args])


def test_symbolic_links_are_refused_and_never_followed_and_the_rest_is_imported(tmp_path: Path):
    group = AssetGroupFactory(verified=True)
    elsewhere = tmp_path / "someone-else"
    elsewhere.mkdir()
    private = elsewhere / "their-portrait.jpg"  # another person's file, outside the folder
    private.write_bytes(media_corpus.face_picture(1, width=900, height=1200))
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    (shoot / "front.jpg").write_bytes(media_corpus.face_picture(1, width=900, height=1200))
    (shoot / "borrowed.jpg").symlink_to(private)
    (shoot / "again.jpg").symlink_to(shoot / "front.jpg")  # inside the folder, still a link
    (shoot / "up").symlink_to(elsewhere)  # a folder outside, through a link
    (shoot / "sub").mkdir()

    output, error = run("--person", str(group.person.pk), str(shoot))

    assert error is not None and str(error) == "4 of 5 files were refused."
    rows = summary_rows(output)
    link = "refused A symbolic link: refused, not followed (import the file itself, from its own"
    assert rows["borrowed.jpg"].startswith(link)
    assert rows["again.jpg"].startswith(link)
    assert rows["up"].startswith(link)
    assert rows["sub"] == "refused Not a regular file: skipped."
    assert rows["front.jpg"] == "queued —"
    assert list(Asset.objects.values_list("original_filename", flat=True)) == ["front.jpg"]


def test_a_path_that_leaves_the_folder_is_not_a_file_of_it(tmp_path: Path):
    group = AssetGroupFactory(verified=True)
    (tmp_path / "outside.jpg").write_bytes(make_image(width=1200, height=1600, fmt="JPEG"))
    shoot = tmp_path / "shoot"
    shoot.mkdir()
    (shoot / "front.jpg").write_bytes(media_corpus.face_picture(1, width=900, height=1200))

    output, error = run("--person", str(group.person.pk), str(shoot))

    # Only the folder's own entries: "..", "../outside.jpg" and the parent are never listed.
    assert error is None
    assert set(summary_rows(output)) == {"front.jpg"}
    assert list(Asset.objects.values_list("original_filename", flat=True)) == ["front.jpg"]


def test_file_names_are_printed_with_control_characters_escaped(tmp_path: Path):
    group = AssetGroupFactory(verified=True)
    evil = "\x1b[2J\x1b[31mred\x07.jpg"
    (tmp_path / evil).write_bytes(b"not a picture")

    output, error = run("--person", str(group.person.pk), str(tmp_path))

    assert error is not None
    assert "\x1b" not in output and "\x07" not in output
    assert "\\x1b[2J\\x1b[31mred\\x07.jpg" in output
