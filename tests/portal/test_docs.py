"""The project's own documents stand alone, and what the code cites in them exists."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)
CONTRACT = ROOT / "docs" / "upstream.md"
SOURCE_FOLDERS = ["portal", "consent", "verification", "assets", "mail", "audit", "upstream",
                  "sandbox", "tests", "benchmarks"]  # fmt: skip


def project_texts() -> list[Path]:
    files = [ROOT / "README.md", ROOT / ".env.example", *sorted((ROOT / "docs").glob("*.md"))]
    for folder in SOURCE_FOLDERS:
        files += sorted((ROOT / folder).rglob("*.py")) + sorted((ROOT / folder).rglob("*.html"))
    return files


def contract_anchors() -> set[str]:
    """Section numbers (``4``, ``4.5``), open questions (``12.1``…) and gotchas (``G6``)."""
    anchors: set[str] = set()
    section = ""
    for line in CONTRACT.read_text().splitlines():
        heading = re.match(r"#{2,3} (\d+(?:\.\d+)?)\.? ", line)
        if heading:
            section = heading[1]
            anchors.add(section)
            continue
        item = re.match(r"(\d+)\. ", line)
        if item and section == "12":
            anchors.add(f"12.{item[1]}")
        gotcha = re.match(r"- \*\*(G\d+)\*\*", line)
        if gotcha:
            anchors.add(gotcha[1])
    return anchors


def citations(text: str) -> set[str]:
    """``§4.5``, both ends of ``§3-4``, and ``G6`` as cited in the code and documents."""
    cited = set()
    for match in re.finditer(r"§(\d+(?:\.\d+)?)(?:-(\d+(?:\.\d+)?))?", text):
        cited.update(number for number in match.groups() if number)
    cited.update(re.findall(r"\b(G\d+)\b", text))
    return cited


def test_the_contract_has_its_sections_questions_and_gotchas():
    anchors = contract_anchors()

    assert {str(n) for n in range(14)} <= anchors
    assert {"2.1", "4.5", "5.1", "6.1"} <= anchors
    assert {f"12.{n}" for n in range(1, 17)} <= anchors
    assert {f"G{n}" for n in range(1, 21)} <= anchors


def test_every_citation_of_the_contract_resolves():
    anchors = contract_anchors()
    unresolved = {
        str(path.relative_to(ROOT)): sorted(citations(path.read_text()) - anchors)
        for path in project_texts()
    }

    assert {path: cited for path, cited in unresolved.items() if cited} == {}


def test_nothing_points_outside_the_repository_for_the_contract():
    this_file = Path(__file__)
    mentions = [
        str(path.relative_to(ROOT))
        for path in project_texts()
        if path != this_file and "shared/" in path.read_text()
    ]

    assert mentions == []
