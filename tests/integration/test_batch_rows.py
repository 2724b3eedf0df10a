"""The batch seam: (explainer, plan, numbered items) -> rows, the same for every backend; the
job that uses it refuses to touch an existing OUT unless told to resume or start over."""

from __future__ import annotations

import json

import pytest

from fairforge_attr.batch import BatchJob, attribute_rows
from fairforge_attr.errors import InvalidRequestError
from fairforge_attr.io import iter_jsonl, parse_batch_item
from tests.cli.conftest import SAMPLE

MIXED = SAMPLE / "batch_mixed.jsonl"


def _items():
    return [parse_batch_item(entry) for entry in iter_jsonl(MIXED)]


def _comparable(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "compute_time_s"}


@pytest.fixture(scope="module")
def plan(qwen_explainer):
    return qwen_explainer.plan("occlusion", "word", seed=0)


def test_one_row_per_item_in_order_error_rows_included(qwen_explainer, plan):
    items = _items()
    rows = list(attribute_rows(qwen_explainer, plan, items))
    assert [r["id"] for r in rows] == [i.id for i in items]
    assert [r["line"] for r in rows] == [i.line for i in items]
    status = {r["id"]: r["status"] for r in rows}
    assert [i for i, s in status.items() if s == "ok"] == ["good-1", "good-2", "good-3", "good-4"]
    broken = next(r for r in rows if r["id"] == "line-2")  # invalid JSON: its id is line-N
    assert broken["status"] == "error" and "invalid JSON" in broken["error"]
    assert broken["method"] == "occlusion" and broken["model"] == qwen_explainer.model_name
    too_long = next(r for r in rows if r["id"] == "too-long")  # readable, but fails when encoded
    assert too_long["status"] == "error" and too_long["meta"] == {}


def test_rows_do_not_depend_on_how_the_stream_is_cut(qwen_explainer, plan):
    items = _items()
    whole = list(attribute_rows(qwen_explainer, plan, items))
    pieces = []
    for block in (items[:3], items[3:4], items[4:]):  # e.g. the blocks of map_batches
        pieces += list(attribute_rows(qwen_explainer, plan, block))
    # Items that share a pass are padded together: scores agree to float rounding, and the
    # pass counts follow the grouping.
    varies = {"compute_time_s", "n_forward", "units", "target_log_prob"}
    assert [{k: v for k, v in r.items() if k not in varies} for r in pieces] == [
        {k: v for k, v in r.items() if k not in varies} for r in whole
    ]
    for a, b in zip(pieces, whole):
        assert [u["text"] for u in a["units"] or []] == [u["text"] for u in b["units"] or []]
        assert [u["score"] for u in a["units"] or []] == pytest.approx(
            [u["score"] for u in b["units"] or []], abs=1e-5
        )


def test_the_job_writes_the_rows_of_the_seam(qwen_explainer, plan, tmp_path):
    out = tmp_path / "out.jsonl"
    job = BatchJob(qwen_explainer, out, plan=plan)
    job.run(MIXED)
    assert job.finish() == (10, 6)
    written = [_comparable(json.loads(line)) for line in out.read_text().splitlines()]
    expected = [_comparable(r) for r in attribute_rows(qwen_explainer, plan, _items())]
    assert written == json.loads(json.dumps(expected))
    # the same job from method names builds the same plan
    assert BatchJob(qwen_explainer, tmp_path / "b.jsonl", method="occlusion", granularity="word").plan == plan


def test_the_job_refuses_an_existing_output_unless_told(qwen_explainer, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    job = BatchJob(qwen_explainer, out, method="occlusion", granularity="word")
    with pytest.raises(InvalidRequestError, match=r"exists; call start_over\(\) to replace it"):
        job.run(MIXED)
    assert out.read_text() == "precious\n" and not job.store.exists()
    job.start_over()
    job.run(MIXED)
    job.finish()
    assert len(out.read_text().splitlines()) == 10

    unfinished = tmp_path / "unfinished.jsonl"
    job = BatchJob(qwen_explainer, unfinished, method="occlusion", granularity="word")
    job.run(MIXED, limit=2)  # no finish(): the run stays in OUT.partial/
    again = BatchJob(qwen_explainer, unfinished, method="occlusion", granularity="word")
    with pytest.raises(InvalidRequestError, match=r"unfinished run; call resume\(\) to finish it"):
        again.run(MIXED)
    again.resume()
    again.run(MIXED)
    assert again.finish() == (10, 6)


def test_a_job_needs_an_output_name_with_a_format(qwen_explainer, tmp_path):
    with pytest.raises(InvalidRequestError, match=r"\*\.parquet, \*\.jsonl, \*\.json"):
        BatchJob(qwen_explainer, tmp_path / "out.csv", method="occlusion")
