"""The reference notebook's cells, verbatim but for the import line, on the demo model."""

import pytest

from fairforge_attr import (
    AttributionExplainer,
    AttributionMethod,
    Granularity,
    compute_attributions,
)


@pytest.fixture(scope="module")
def model_and_tokenizer(demo_pair):
    return demo_pair


def test_notebook_cells(model_and_tokenizer, capsys):
    model, tokenizer = model_and_tokenizer
    # cell 2
    explainer = AttributionExplainer(
        model=model,
        tokenizer=tokenizer,
        default_method=AttributionMethod.LIME,  # LIME is a good default
        default_granularity=Granularity.WORD,  # Word-level is most interpretable
        verbose=True,
    )
    print("Explainer created!")

    # cell 3
    messages = [
        {"role": "system", "content": "Answer concisely with 3 bullet points."},
        {"role": "user", "content": "Explain Albert Einstein's theory of relativity"},
    ]
    target = """
- Einstein proposed that time and space are not absolute but relative, influencing how we perceive the universe.
- He introduced the concept of spacetime curvature, which explains gravity as a distortion of spacetime.
- His equations, like the general and special theories, have revolutionized our understanding of physics.
"""
    result = explainer.explain(
        messages=messages,
        target=target,
        method=AttributionMethod.LIME,
    )
    print(f"Computed {len(result.attributions)} attributions")
    print(f"Method: {result.method.value}")
    print(f"Granularity: {result.granularity.value}")

    # cell 4
    top_10 = result.get_top_k(10)
    print("Top 10 Most Important Words/Tokens:")
    print("-" * 40)
    for i, attr in enumerate(top_10, 1):
        print(f"{i:2}. '{attr.text:15}' | score: {attr.score:+.4f} | normalized: {attr.normalized_score:.4f}")

    # cell 5
    explainer.visualize(result)

    # cell 6
    simple_messages = [{"role": "user", "content": "What is the capital of France?"}]
    simple_target = "The capital of France is Paris."
    for method in [AttributionMethod.LIME, AttributionMethod.OCCLUSION]:
        result = explainer.explain(messages=simple_messages, target=simple_target, method=method)
        for attr in result.get_top_k(5):
            print(f"  '{attr.text}': {attr.score:+.4f}")

    # cell 7
    qa_pairs = [
        (
            [{"role": "user", "content": "What is machine learning?"}],
            "Machine learning is a subset of AI that enables systems to learn from data.",
        ),
        (
            [{"role": "user", "content": "What is deep learning?"}],
            "Deep learning uses neural networks with many layers to process complex patterns.",
        ),
    ]
    batch_results = explainer.explain_batch(qa_pairs)
    print(f"Processed {len(batch_results)} items")
    print(f"Total compute time: {batch_results.total_compute_time_seconds:.2f}s")
    for i, result in enumerate(batch_results):
        print(f"\nQ&A #{i + 1}:")
        print(f"  Top 3 words: {[attr.text for attr in result.get_top_k(3)]}")

    # cell 8
    quick_result = compute_attributions(
        model=model,
        tokenizer=tokenizer,
        messages=[{"role": "user", "content": "Why is the sky blue?"}],
        target="The sky appears blue due to Rayleigh scattering of sunlight.",
        method=AttributionMethod.LIME,
        granularity=Granularity.WORD,
    )
    print("Top 5 contributing words:")
    for attr in quick_result.get_top_k(5):
        print(f"  '{attr.text}': {attr.score:+.4f}")

    # cell 9
    viz_data = quick_result.to_dict_for_visualization()
    print(f"  tokens: {viz_data['tokens'][:5]}...")
    print(f"  scores: {viz_data['scores'][:5]}...")
    result_dict = quick_result.model_dump()
    print(f"\nFull result keys: {list(result_dict.keys())}")

    out = capsys.readouterr().out
    assert "Computed " in out and "Method: lime" in out and "Granularity: word" in out
    assert "Processed 2 items" in out
    assert viz_data["tokens"][:4] == ["Why", "is", "the", "sky"]
    assert len(viz_data["scores"]) == len(viz_data["tokens"]) == len(quick_result.attributions)
    assert {"prompt", "target", "method", "granularity", "attributions", "metadata"} <= set(result_dict)
    assert len(batch_results) == 2 and batch_results.model_name == "fairforge-demo"
    # cell 3's explanation covers both messages
    assert {a.role for a in explainer.explain(messages=messages, target=target).attributions} == {
        "system",
        "user",
    }
