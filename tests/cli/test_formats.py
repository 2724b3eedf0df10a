"""The one table of file formats: every lookup by file name goes through it."""

from __future__ import annotations

import pytest

from fairforge_attr.errors import InvalidRequestError
from fairforge_attr.io import FORMATS, open_results, output_format, write_result, write_rows
from fairforge_attr.io.schema import result_row, row_to_result
from fairforge_attr.results import ResultMetadata
from tests.conftest import FRANCE, FRANCE_TARGET


@pytest.fixture(scope="module")
def result(qwen_explainer):
    return qwen_explainer.explain(FRANCE, FRANCE_TARGET, method="occlusion", per_target_token=True)


ROW_FORMATS = [f for f in FORMATS if f.write_rows is not None]


@pytest.mark.parametrize("fmt", ROW_FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("layout", ["wide", "long"])
def test_every_row_format_reads_back_what_it_writes(tmp_path, result, fmt, layout):
    row = result_row(result, item_id="q1", line=1, meta={"k": "v"})
    for suffix in fmt.suffixes:
        path = f"{tmp_path}/out{suffix}"  # a str: "out/" names a folder, a Path drops the "/"
        assert output_format(path) == fmt.name
        assert write_rows(path, [row, {**row, "id": "q2"}], layout) == 2
        back = open_results(path)
        assert (back.format, back.layout) == (fmt.name, layout)
        rows = list(back.rows())
        assert [r["id"] for r in rows] == ["q1", "q2"]
        assert [u["score"] for u in rows[0]["units"]] == [a.score for a in result.attributions]
    for suffix in fmt.read_suffixes:  # other spellings are read, never written
        with pytest.raises(InvalidRequestError):
            output_format(tmp_path / f"out{suffix}")


def test_unknown_names_list_the_table(tmp_path):
    written = ", ".join("*" + f.suffixes[0] for f in ROW_FORMATS if f.suffixes[0] != "/") + " or DIR/"
    with pytest.raises(InvalidRequestError, match=written.replace("*", r"\*").replace(".", r"\.")):
        output_format(tmp_path / "out.csv")
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(
        InvalidRequestError, match=r"use a \*\.parquet, \*\.jsonl, \*\.json or DIR/ result file"
    ):
        open_results(tmp_path / "x.csv")
    with pytest.raises(InvalidRequestError, match=r"\*\.json or \*\.html"):
        write_result(tmp_path / "r.txt", None)  # type: ignore[arg-type]


def test_one_explain_result_in_every_result_format(tmp_path, result):
    for fmt in (f for f in FORMATS if f.write_result is not None):
        path = tmp_path / f"r{fmt.suffixes[-1]}"
        write_result(path, result)
        assert path.read_text().strip()
    back = open_results(tmp_path / "r.json")
    assert back.layout == "result"
    assert [u["text"] for u in next(back.rows())["units"]] == [a.text for a in result.attributions]


def test_row_to_result_reads_every_stored_metadata_field(result):
    again = row_to_result(result_row(result, item_id="1", line=None, meta={}))
    not_stored = {"recomputed_in_float32", "target_generated"}
    for name in ResultMetadata.model_fields:
        if name not in not_stored:
            assert getattr(again.metadata, name) == getattr(result.metadata, name), name
    assert again.attributions == result.attributions and again.per_target_token == result.per_target_token
    # a row with only the item columns still becomes a result (defaults, zeros, None)
    bare = row_to_result({"id": "1", "method": "lime", "granularity": "word", "units": []})
    assert bare.metadata.model == "" and bare.metadata.seed is None and bare.metadata.params == {}
    assert bare.metadata.n_units == 0 and bare.metadata.warnings == []


def test_earlier_import_paths_still_work():
    import fairforge_attr.batch
    import fairforge_attr.io
    import fairforge_attr.io.schema
    from fairforge_attr.schema import row_to_result as old_row_to_result

    assert fairforge_attr.io.BatchJob is fairforge_attr.batch.BatchJob
    assert old_row_to_result is fairforge_attr.io.schema.row_to_result
