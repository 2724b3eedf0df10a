"""ffattr merge: shards joined equal one run; missing shards, repeated ids and parts of other
runs are reported."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from fairforge_attr.io import open_results
from fairforge_attr.io.schema import WIDE_SCHEMA
from tests.cli.conftest import SAMPLE

MIXED = SAMPLE / "batch_mixed.jsonl"  # 10 lines, 6 of them bad on purpose


@pytest.fixture()
def batch(cli, qwen_dir):
    def go(out, *args, src=MIXED):
        res = cli("batch", src, out, "--model", qwen_dir, "--method", "occlusion", "--allow-errors", *args)
        assert res.exit_code == 0, res.stderr
        return out

    return go


@pytest.fixture()
def shards(batch, tmp_path):
    return [batch(tmp_path / f"part-{i}.parquet", "--shard", f"{i}/3") for i in (1, 2, 3)]


def _key(rows):
    return [(r["id"], r["line"], r["status"], r["error"]) for r in rows]


def test_three_shards_merged_equal_one_unsharded_run(cli, batch, shards, tmp_path):
    whole = pq.read_table(batch(tmp_path / "whole.parquet")).to_pylist()
    out = tmp_path / "merged.parquet"
    res = cli("merge", *shards, out, "--input", MIXED)
    assert res.exit_code == 0, res.stderr
    assert "wrote" in res.stderr and "10 items (4 ok, 6 failed) from 3 parts" in res.stderr
    table = pq.read_table(out)
    assert table.schema.equals(WIDE_SCHEMA, check_metadata=False)
    merged = table.to_pylist()
    assert _key(merged) == _key(whole)  # input order, bad lines with their numbers
    for got, want in zip(merged, whole):
        assert [u["text"] for u in got["units"] or []] == [u["text"] for u in want["units"] or []]
        # a shard packs other items into its passes: the same scores to float32 rounding
        assert (
            got["units"] is None
            or max(abs(a["score"] - b["score"]) for a, b in zip(got["units"], want["units"])) < 1e-5
        )


def test_a_missing_shard_is_reported_with_its_ids(cli, shards, tmp_path):
    out = tmp_path / "merged.jsonl"
    res = cli("merge", shards[0], shards[2], out, "--input", MIXED)
    assert res.exit_code == 1
    # shard 2/3 held lines 2, 5 and 8; line 2 is not JSON: its id is its line number
    assert "3 ids of" in res.stderr and "are in no part: line-2, empty-messages, good-3" in res.stderr, (
        res.stderr
    )
    assert len(out.read_text().splitlines()) == 7  # written all the same


def test_a_repeated_id_is_refused_and_out_left_alone(cli, shards, tmp_path):
    out = tmp_path / "merged.parquet"
    res = cli("merge", shards[0], shards[1], shards[0], out)
    assert res.exit_code == 2
    assert "id 'good-1' is in" in res.stderr and "one part only" in res.stderr
    assert not out.exists() and list(tmp_path.glob("merged*")) == []
    out.write_text("precious")
    res = cli("merge", *shards, out)
    assert res.exit_code == 2 and "--overwrite" in res.stderr and out.read_text() == "precious"
    assert cli("merge", *shards, out, "--overwrite").exit_code == 0
    assert len(pq.read_table(out)) == 10


def test_parts_of_other_settings_or_layouts_are_refused(cli, batch, shards, tmp_path):
    other_seed = batch(tmp_path / "lime-1.parquet", "--shard", "1/3", "--method", "lime", "--seed", "1")
    other_seed2 = batch(tmp_path / "lime-2.parquet", "--shard", "2/3", "--method", "lime", "--seed", "2")
    res = cli("merge", other_seed, other_seed2, tmp_path / "m.parquet")
    assert res.exit_code == 2 and "seed 1 -> 2" in res.stderr
    res = cli("merge", shards[0], other_seed2, tmp_path / "m.parquet")
    assert res.exit_code == 2 and "method occlusion -> lime" in res.stderr
    long = batch(tmp_path / "long.parquet", "--shard", "2/3", "--layout", "long")
    res = cli("merge", shards[0], long, tmp_path / "m.parquet")
    assert res.exit_code == 2 and "layout" in res.stderr
    assert not (tmp_path / "m.parquet").exists()


def test_folders_of_parts_and_other_formats_merge_too(cli, batch, shards, tmp_path):
    folder = batch(f"{tmp_path}/folder/", "--shard", "2/3")  # a folder of Parquet parts
    assert [p.name for p in (tmp_path / "folder").iterdir()] == ["part-00000.parquet"]
    as_jsonl = batch(tmp_path / "part-3.jsonl", "--shard", "3/3")
    out = f"{tmp_path}/merged/"
    res = cli("merge", shards[0], folder, as_jsonl, out)
    assert res.exit_code == 2 and "different columns" in res.stderr  # JSON rows keep no schema
    res = cli("merge", shards[0], folder, shards[2], out)
    assert res.exit_code == 0, res.stderr
    merged = list(open_results(tmp_path / "merged").rows())
    assert [r["line"] for r in merged] == list(range(1, 11))
    res = cli("show", tmp_path / "merged", "--first", "0")
    assert res.exit_code == 0 and "10" in res.stdout


def test_usage(cli, shards, tmp_path):
    res = cli("merge", shards[0])
    assert res.exit_code == 2 and "PART" in res.stderr
    res = cli("merge", shards[0], tmp_path / "out.csv")
    assert res.exit_code == 2 and "DIR/" in res.stderr
    res = cli("merge", tmp_path / "nope.parquet", tmp_path / "out.parquet")
    assert res.exit_code == 2 and "no such file" in res.stderr
