"""Can the user trust an explanation? Faithfulness metrics for attribution results.

An attribution claims "removing these units changes f the most". These metrics test the claim
with forward passes only, scored by the engine like any perturbation method's variants:

- deletion / insertion curves and their normalised areas (Petsiuk et al. 2018);
- ERASER comprehensiveness and sufficiency at top-k and their AOPC over bins of
  {1, 5, 10, 20, 50} % of the units (DeYoung et al. 2020);
- LDS, the linear datamodeling score (Cohen-Wang et al. 2024, ContextCite);
- each also for random orderings of the units, so a figure comes with its gain over random.

``types`` (the options and the result) is imported here; the pure mask and metric functions
live in ``probes`` and ``metrics``, and ``scoring`` drives the engine (it imports torch, so it
is imported where it is used).

Cost per item, in distinct sequences scored (identical masks are scored once, so a short
prompt costs less): 2 (f_full, f_empty) + ``n_ablations`` (LDS) + at most 16 per ordering
(6 deletion + 6 insertion points between 0 and 100 %, the 1 % AOPC bin twice, top-k twice; the
other bins are points of the curves), for the |score| ordering, the signed ordering (when
some score is negative) and each of the ``n_random`` random orderings. Defaults: at most
2 + 32 + 16 x (2 + 8) = 194. The random orderings and the ablations depend on the item only,
so ``ffattr evaluate`` scores them once for all methods.
"""

from .types import AOPC_BINS, FRACTIONS, Faithfulness, FaithfulnessOptions

PER_ORDERING = 16  # at most, see the module docstring

# What each figure costs per item, in distinct sequences scored (forward only), as
# `ffattr methods` and the README print it. An ordering: by |score|, by score (signed results),
# or one of the n_random random ones.
METRIC_COSTS = (
    ("f_full, f_empty", "2, shared by everything below"),
    ("deletion + insertion curves", "12 per ordering (6 fractions strictly between 0 and 100 % each)"),
    (
        "comprehensiveness + sufficiency",
        "4 per ordering (the 1 % AOPC bin and top-k, each removed and kept; the 5-50 % bins are curve points)",
    ),
    ("LDS", "n_ablations (default 32), shared by all orderings; the random LDS reuses them"),
    ("random baseline", "n_random (default 8) x 16, shared by every method explained on the item"),
)


def cost_formula() -> str:
    """The worst-case cost of one item's check, in sequences, as ``ffattr methods`` prints it."""
    return (
        f"faithfulness: <= 2 + n_ablations + {PER_ORDERING} x (1 [+1 signed] + n_random) sequences "
        f"per item (defaults: <= {2 + 32 + PER_ORDERING * (2 + 8)}), forward only"
    )


__all__ = [
    "AOPC_BINS",
    "FRACTIONS",
    "METRIC_COSTS",
    "PER_ORDERING",
    "Faithfulness",
    "FaithfulnessOptions",
    "cost_formula",
]
