"""`make demo`: explain one answer of the built-in demo model through the Python API."""

from fairforge_attr import AttributionExplainer, AttributionMethod, Granularity

explainer = AttributionExplainer(default_granularity=Granularity.WORD)
result = explainer.explain(
    messages=[{"role": "user", "content": "What is the capital of France?"}],
    target="The capital of France is Paris.",
    method=AttributionMethod.OCCLUSION,
)
explainer.visualize(result)
