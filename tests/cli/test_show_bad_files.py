"""ffattr show on files it cannot use: one line saying what the file is not, exit 2."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.cli.conftest import SAMPLE


@pytest.fixture(scope="module")
def good_parquet(tmp_path_factory, qwen_dir):
    from typer.testing import CliRunner

    from fairforge_attr.cli import app

    out = tmp_path_factory.mktemp("show") / "r.parquet"
    res = CliRunner().invoke(
        app, ["batch", str(SAMPLE / "batch_small.jsonl"), str(out), "-m", qwen_dir, "--method", "occlusion"]
    )
    assert res.exit_code == 0, res.stderr
    return out


def _damage(good, tmp_path):
    """The same file with bytes in the middle of its first data page overwritten."""
    data = bytearray(good.read_bytes())
    meta = pq.ParquetFile(good).metadata
    start = meta.row_group(0).column(0).data_page_offset
    end = meta.row_group(0).column(meta.num_columns - 1).data_page_offset
    for i in range(start + 20, min(end, start + 4000)):
        data[i] = 0xAB
    path = tmp_path / "damaged.parquet"
    path.write_bytes(bytes(data))
    return path


def _other_program(tmp_path):
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"name": ["a", "b"], "value": [1.5, 2.5]}), path)
    return path


CASES = {
    "not-utf8.jsonl": (b'{"id": "a", "status": "ok"}\n\xff\xfe\xfd\n', "not UTF-8"),
    "numbers.json": (b"[1, 2, 3]", "not a list of result rows"),
    "rows.jsonl": (b"[1, 2]\n", "not a result row"),
    "nan.jsonl": (b'{"id": "a", "status": NaN}\n', "NaN"),
}


@pytest.mark.parametrize("name", [*CASES, "other.parquet", "damaged.parquet"])
def test_show_says_what_a_file_is_not(cli, good_parquet, tmp_path, name):
    if name == "other.parquet":
        path, needle = _other_program(tmp_path), "not a result file of ffattr"
    elif name == "damaged.parquet":
        path, needle = _damage(good_parquet, tmp_path), "damaged"
    else:
        path = tmp_path / name
        path.write_bytes(CASES[name][0])
        needle = CASES[name][1]
    res = cli("show", path)
    assert res.exit_code == 2, res.stdout + res.stderr
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert needle in res.stderr and str(path.name) in res.stderr


def test_show_still_reads_a_good_file(cli, good_parquet):
    res = cli("show", good_parquet, "--first", "0")
    assert res.exit_code == 0 and "8 (8 ok, 0 failed)" in res.stdout
    assert json.loads(cli("show", good_parquet, "-f", "json").stdout)["summary"]["items"] == 8
