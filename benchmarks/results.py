"""One row of the results table, and the table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    """A measured value and, when there is one, its target (``met`` is None without a target)."""

    benchmark: str
    measure: str
    value: str
    target: str = ""
    met: bool | None = None


def verdict(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "-"}[met]


def table(results: Sequence[Result]) -> str:
    """A plain-text table, one row per result."""
    header = ("benchmark", "measure", "value", "target", "")
    rows = [header, *((r.benchmark, r.measure, r.value, r.target, verdict(r.met)) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))

    rule = line(["-" * width for width in widths])
    return "\n".join([line(header).rstrip(), rule, *(line(row).rstrip() for row in rows[1:])])
