"""Faithfulness on real models: against brute force, on the demo model's data, and through
every result format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy import stats as scipy_stats

from fairforge_attr import AttributionResult, InvalidRequestError
from fairforge_attr.engine import resolve_baseline
from fairforge_attr.faithfulness import FRACTIONS, FaithfulnessOptions
from fairforge_attr.faithfulness.scoring import FaithfulnessTask, score_faithfulness
from fairforge_attr.io import iter_jsonl, open_results, parse_batch_item, write_rows
from fairforge_attr.io.schema import result_row, row_to_result
from fairforge_attr.prompt import encode
from fairforge_attr.results import Message
from tests.conftest import FRANCE, FRANCE_TARGET
from tests.reference import log_prob, without_units

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
CHAT = [
    {"role": "system", "content": "Answer concisely. Be brief."},
    {"role": "user", "content": "What is the capital of France and why is it famous?"},
]


@pytest.fixture(scope="module")
def occlusion(demo_explainer):
    return demo_explainer.explain(CHAT, FRANCE_TARGET, method="occlusion", faithfulness=True)


def _encoded(explainer, result):
    return encode(
        explainer.tokenizer,
        target=result.target,
        granularity=result.granularity,
        messages=[Message(**m) for m in CHAT],
    )


def test_one_deletion_point_equals_brute_force(demo_explainer, demo_pair, occlusion):
    """f after removing the top 30 % of units by |score|, by one plain forward of the model."""
    model, tokenizer = demo_pair
    enc = _encoded(demo_explainer, occlusion)
    scores = [a.score for a in occlusion.attributions]
    n = len(scores)
    ranked = sorted(range(n), key=lambda i: (-abs(scores[i]), i))
    k = math.ceil(0.3 * n)
    ids = without_units(enc, ranked[:k], tokenizer.pad_token_id)
    expected = log_prob(model, ids, enc.prompt_length)
    got = occlusion.faithfulness.deletion_curve[FRACTIONS.index(0.3)]
    assert got == pytest.approx(expected, abs=1e-4)
    # the ends of the curve are f_full and f_empty, and f_full is the result's own f(x)
    f = occlusion.faithfulness
    assert f.deletion_curve[0] == pytest.approx(occlusion.metadata.target_log_prob, abs=1e-4)
    assert f.deletion_curve[-1] == pytest.approx(
        log_prob(model, without_units(enc, range(n), tokenizer.pad_token_id), enc.prompt_length), abs=1e-4
    )


def test_lds_equals_brute_force(demo_explainer, demo_pair, occlusion):
    """The documented ablations (SeedSequence([seed, n_units]), second stream, keep with
    probability 0.5), f of each by a plain forward, scipy's Spearman."""
    model, tokenizer = demo_pair
    enc = _encoded(demo_explainer, occlusion)
    scores = np.array([a.score for a in occlusion.attributions])
    n, m = len(scores), occlusion.faithfulness.n_ablations
    rng = np.random.default_rng(np.random.SeedSequence([0, n]).spawn(2)[1])
    masks = rng.random((m, n)) < 0.5
    f = [
        log_prob(
            model,
            without_units(enc, np.flatnonzero(~mask).tolist(), tokenizer.pad_token_id),
            enc.prompt_length,
        )
        for mask in masks
    ]
    expected = scipy_stats.spearmanr(masks.astype(float) @ scores, f).statistic
    assert occlusion.faithfulness.lds == pytest.approx(expected, abs=1e-6)


def _reversed(result: AttributionResult) -> AttributionResult:
    """The same result with its |score| ordering reversed (weakest unit first)."""
    order = sorted(range(len(result.attributions)), key=lambda i: (-abs(result.attributions[i].score), i))
    new = {unit: float(j + 1) for j, unit in enumerate(order)}
    units = [a.model_copy(update={"score": new[i]}) for i, a in enumerate(result.attributions)]
    return result.model_copy(update={"attributions": units, "faithfulness": None})


def test_exact_occlusion_deletes_better_than_its_reverse_and_random_on_sample_data(demo_explainer):
    items = [parse_batch_item(e) for e in iter_jsonl(SAMPLE / "demo_batch.jsonl")]
    batch = demo_explainer.explain_batch([it.request for it in items], method="occlusion", faithfulness=True)
    reverse = demo_explainer.faithfulness_many([_reversed(r) for r in batch])
    occ, rev, rnd = [], [], []
    for r, back in zip(batch, reverse):
        if r.faithfulness.deletion_auc is None:  # removing every unit does not lower f here
            continue
        occ.append(r.faithfulness.deletion_auc)
        rev.append(back.deletion_auc)
        rnd.append(r.faithfulness.random_deletion_auc)
    assert len(occ) >= 8
    assert np.mean(occ) < np.mean(rnd) < np.mean(rev)
    assert sum(o < v for o, v in zip(occ, rev)) >= len(occ) - 1
    assert sum(o < v for o, v in zip(occ, rnd)) >= len(occ) - 2


def test_batch_equals_one_by_one_and_the_existing_result_check(demo_explainer, occlusion):
    single = demo_explainer.explain(FRANCE, FRANCE_TARGET, method="lime", faithfulness=True)
    batch = demo_explainer.explain_batch(
        [(CHAT, FRANCE_TARGET), (FRANCE, FRANCE_TARGET)], method="lime", faithfulness=True
    )
    a, b = single.faithfulness.model_dump(), batch[1].faithfulness.model_dump()
    for key in ("compute_time_seconds", "n_forward"):
        a.pop(key), b.pop(key)
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert value == (
            b[key] if isinstance(value, str) or value is None else pytest.approx(b[key], abs=1e-5)
        ), key
    again = demo_explainer.faithfulness(occlusion)
    assert again.lds == pytest.approx(occlusion.faithfulness.lds, abs=1e-6)
    assert again.deletion_curve == pytest.approx(occlusion.faithfulness.deletion_curve, abs=1e-5)


def test_same_seed_same_figures_other_seed_other_draws(demo_explainer, occlusion):
    same = demo_explainer.faithfulness(occlusion)
    other = demo_explainer.faithfulness(occlusion, seed=1)
    assert same.random_deletion_curve == pytest.approx(occlusion.faithfulness.random_deletion_curve)
    assert other.random_deletion_curve != pytest.approx(same.random_deletion_curve)
    assert other.deletion_curve == pytest.approx(same.deletion_curve, abs=1e-5)  # not random


def test_signed_figures_only_for_results_with_negative_scores(demo_explainer):
    sal = demo_explainer.explain(CHAT, FRANCE_TARGET, method="saliency", faithfulness=True)
    assert all(a.score >= 0 for a in sal.attributions)
    assert sal.faithfulness.signed_deletion_auc is None
    lime = demo_explainer.explain(CHAT, FRANCE_TARGET, method="lime", faithfulness=True)
    assert any(a.score < 0 for a in lime.attributions)
    assert lime.faithfulness.signed_comprehensiveness is not None


def test_metrics_follow_the_f_they_are_given(demo_explainer, occlusion):
    """A scorer that explains another f (e.g. a contrastive difference of log-probs) hands its
    own value_of; the figures follow it. Here f doubled: nats double, ranks do not move."""
    enc = _encoded(demo_explainer, occlusion)
    baseline = resolve_baseline(demo_explainer.tokenizer, None, demo_explainer.engine.vocab_size)
    task = FaithfulnessTask(enc, np.array([a.score for a in occlusion.attributions]))
    (doubled,) = score_faithfulness(
        demo_explainer.engine, [task], FaithfulnessOptions(), baseline, value_of=lambda r: 2 * r.values
    )
    f = occlusion.faithfulness
    assert doubled.comprehensiveness == pytest.approx(2 * f.comprehensiveness, rel=1e-6)
    assert doubled.lds == pytest.approx(f.lds) and doubled.deletion_auc == pytest.approx(f.deletion_auc)


def test_cost_stays_within_the_stated_bound(occlusion):
    f = occlusion.faithfulness
    n = len(occlusion.attributions)
    signed = f.signed_deletion_auc is not None
    assert 2 < f.n_sequences <= 2 + f.n_ablations + 16 * (1 + signed + f.n_random)
    assert f.n_sequences <= 2**n and f.n_forward >= 1


def test_a_result_of_other_units_is_refused(demo_explainer, occlusion):
    other = occlusion.model_copy(update={"attributions": occlusion.attributions[:-1]})
    with pytest.raises(InvalidRequestError, match="do not match"):
        demo_explainer.faithfulness(other)
    with pytest.raises(InvalidRequestError, match="faithfulness"):
        demo_explainer.explain(FRANCE, FRANCE_TARGET, method="occlusion", faithfulness={"n_random": 0})


def test_round_trips_model_dump_json_jsonl_and_parquet(tmp_path, occlusion):
    assert AttributionResult.model_validate(occlusion.model_dump()) == occlusion
    assert AttributionResult.model_validate_json(occlusion.model_dump_json()) == occlusion
    row = result_row(occlusion, item_id="a", line=1, meta={})
    for name in ("out.jsonl", "out.parquet", "out.json"):
        write_rows(tmp_path / name, [row])
        (back,) = list(open_results(tmp_path / name).rows())
        assert row_to_result(back).faithfulness == occlusion.faithfulness
    write_rows(tmp_path / "long.parquet", [row], layout="long")
    (back,) = list(open_results(tmp_path / "long.parquet").rows())
    assert back["faithfulness"] == occlusion.faithfulness.model_dump()
    # typed columns, not JSON text
    column = pq.read_schema(tmp_path / "out.parquet").field("faithfulness").type
    assert pa.types.is_struct(column)
    assert column.field("lds").type == pa.float64() and column.field("n_sequences").type == pa.int64()
    assert column.field("deletion_curve").type == pa.list_(pa.float64())
    table = pq.read_table(tmp_path / "out.parquet", columns=["faithfulness"])
    assert table.column("faithfulness").combine_chunks().field("lds")[0].as_py() == occlusion.faithfulness.lds
    line = json.loads((tmp_path / "out.jsonl").read_text())
    assert isinstance(line["faithfulness"], dict)
