"""The partial store reads back runs written in any order (a distributed backend appends rows
as they come back) in input-line order, each id once."""

from __future__ import annotations

from fairforge_attr.io import PartialStore


def _row(item_id: str, line: int, status: str = "ok") -> dict:
    return {"id": item_id, "line": line, "status": status}


def test_rows_appended_out_of_order_come_back_in_line_order(tmp_path):
    store = PartialStore(tmp_path / "out.parquet")
    store.start_run()
    for line in (5, 2, 9, 1, 7):
        store.append(_row(f"i{line}", line, "error" if line == 9 else "ok"))
    store.append(_row("i2", 2))  # a block delivered twice: kept once
    store.close_run()
    store.start_run()  # --resume: the failed item again, as it comes back, then a torn line
    store.append(_row("i9", 9))
    store.close_run()
    with open(store.runs()[-1], "a") as f:
        f.write('{"id": "i3", "line": 3, "sta')
    merged = list(store.merged())
    assert [r["line"] for r in merged] == [1, 2, 5, 7, 9]
    assert [r["status"] for r in merged] == ["ok"] * 5  # the newest row of i9 counts
    assert store.done_ids() == {"i1", "i2", "i5", "i7", "i9"}
