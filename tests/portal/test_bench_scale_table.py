"""``bin/bench scale``'s table: which rows it flags, by what each row measures (issue 16)."""

from __future__ import annotations

from typing import Any

from benchmarks.scale import table


def measured(rows: dict[str, list[tuple[float, int | None]]], **kinds: str) -> dict[int, Any]:
    """Measures at 100 / 10,000 / 50,000 people: page -> [(ms, queries) per size]."""
    sizes = (100, 10_000, 50_000)
    return {
        size: {
            "size": size,
            "built_seconds": 1.0,
            "rows": [
                {"page": page, "role": "legal", "ms": values[i][0], "queries": values[i][1],
                 **({"kind": kinds[page]} if page in kinds else {})}
                for page, values in rows.items()
            ],
        }
        for i, size in enumerate(sizes)
    }  # fmt: skip


def flags_of(lines: list[str]) -> dict[str, str]:
    return {line.split("  ")[0]: line for line in lines[2:]}


def test_a_page_is_flagged_when_it_grows_past_2x_takes_300_ms_or_more_queries():
    lines, flagged = table(
        measured(
            {
                "flat": [(50, 5), (60, 5), (90, 5)],
                "grows": [(50, 5), (101, 5), (120, 5)],
                "slow": [(200, 5), (250, 5), (300, 5)],
                "queries": [(50, 5), (50, 6), (50, 7)],
            }
        )
    )

    rows = flags_of(lines)
    assert flagged == 3
    assert rows["flat"].endswith("1.8")  # the 50,000/100 ratio is the last cell: no flag
    assert ">2x at 10,000" in rows["grows"]
    assert ">=300 ms" in rows["slow"]
    assert "queries grow" in rows["queries"]


def test_an_exports_total_is_shown_not_judged_but_its_first_bytes_and_memory_are():
    lines, flagged = table(
        measured(
            {
                "export total": [(20, 9), (1500, 19), (8000, 59)],
                "first bytes": [(20, None), (40, None), (310, None)],
                "peak MB": [(0.5, None), (9.0, None), (9.5, None)],
                "peak MB growing": [(0.5, None), (9.0, None), (40.0, None)],
                "full check / read": [(1.2, None), (1.4, None), (2.5, None)],
            },
            **{
                "export total": "total",
                "first bytes": "first bytes",
                "peak MB": "memory",
                "peak MB growing": "memory",
                "full check / read": "to read",
            },
        )
    )

    rows = flags_of(lines)
    assert flagged == 3
    assert rows["export total"].endswith("400.0")
    assert rows["peak MB"].endswith("19.0")
    assert ">=300 ms" in rows["first bytes"]
    assert "grows >1.5x from 10,000" in rows["peak MB growing"]
    assert ">2x the read" in rows["full check / read"]


def test_a_list_that_fills_its_page_says_so_beside_its_flag():
    sizes = {100: (30, 1), 10_000: (90, 100), 50_000: (95, 100)}
    row = {"page": "Withdrawals", "role": "legal", "queries": 8}
    lines, flagged = table(
        {
            size: {"size": size, "built_seconds": 1.0, "rows": [{**row, "ms": ms, "rows": rows}]}
            for size, (ms, rows) in sizes.items()
        }
    )

    assert flagged == 1
    assert "30 (1)" in lines[2] and "95 (100)" in lines[2]
    assert ">2x at 10,000 (rows 1 to 100)" in lines[2]
