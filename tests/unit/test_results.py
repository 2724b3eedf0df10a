import pytest

from fairforge_attr import AttributionResult
from tests.conftest import FRANCE, FRANCE_TARGET


@pytest.fixture(scope="module")
def result(qwen_explainer):
    return qwen_explainer.explain(
        messages=FRANCE, target=FRANCE_TARGET, method="occlusion", per_target_token=True
    )


def test_model_dump_round_trips(result):
    dumped = result.model_dump()
    again = AttributionResult.model_validate(dumped)
    assert again == result
    assert AttributionResult.model_validate_json(result.model_dump_json()) == result
    assert dumped["per_target_token"]["scores"]


def test_metadata_has_the_promised_keys(result):
    keys = {
        "model",
        "device",
        "dtype",
        "seed",
        "n_forward",
        "n_sequences",
        "compute_time_seconds",
        "target_log_prob",
        "params",
    }
    assert keys <= set(result.metadata.model_dump())
    assert result.metadata["n_forward"] == result.metadata.n_forward
    assert result.metadata.params["baseline"] is None and "pad" in result.metadata.params["removal"]
    assert result.metadata.seed is None  # occlusion is deterministic: no seed involved
    with pytest.raises(KeyError):
        result.metadata["nope"]


def test_top_k_ranks_by_absolute_score(result):
    top = result.get_top_k(3)
    mags = [abs(a.score) for a in result.attributions]
    assert [abs(a.score) for a in top] == sorted(mags, reverse=True)[:3]
    assert result.get_top_k(100) == sorted(result.attributions, key=lambda a: -abs(a.score))
    assert result.get_top_k(0) == []


def test_normalized_score_keeps_the_sign(result):
    peak = max(abs(a.score) for a in result.attributions)
    for a in result.attributions:
        assert a.normalized_score == pytest.approx(a.score / peak)


def test_visualization_dict_is_parallel(result):
    viz = result.to_dict_for_visualization()
    assert viz["tokens"] == [a.text for a in result.attributions]
    assert viz["scores"] == [a.score for a in result.attributions]
    assert viz["normalized_scores"] == [a.normalized_score for a in result.attributions]


def test_html_is_self_contained(qwen_explainer, result):
    html = qwen_explainer.visualize(result, return_html=True)
    assert html.startswith("<!DOCTYPE html>") and "France" in html and "<script" not in html
    assert "background:#" in html and "http" not in html


def test_terminal_heatmap_prints(qwen_explainer, result, capsys):
    assert qwen_explainer.visualize(result) is None
    out = capsys.readouterr().out
    assert "France" in out and "top 10" in out and "occlusion" in out
