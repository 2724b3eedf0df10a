"""The faithfulness of a result in words and numbers: a terminal table and a footer line."""

from __future__ import annotations

from rich.table import Table

from ..faithfulness import Faithfulness

# (label, field, random field, gain field, what is better, unit)
ROWS = (
    ("LDS", "lds", "random_lds", "lds_gain", "higher", ""),
    ("deletion AUC", "deletion_auc", "random_deletion_auc", "deletion_gain", "lower", ""),
    ("insertion AUC", "insertion_auc", "random_insertion_auc", "insertion_gain", "higher", ""),
    (
        "comprehensiveness",
        "comprehensiveness",
        "random_comprehensiveness",
        "comprehensiveness_gain",
        "higher",
        " nats",
    ),
    ("sufficiency", "sufficiency", "random_sufficiency", "sufficiency_gain", "lower", " nats"),
)


def fmt(value: float | None, spec: str = ".3f", unit: str = "") -> str:
    return "n/a" if value is None else format(value, spec) + unit


def faithfulness_line(f: Faithfulness) -> str:
    """The footer's summary: LDS and the deletion gain, each against random."""
    return (
        f"faithfulness: LDS {fmt(f.lds, '.2f')} (random {fmt(f.random_lds, '.2f')}), "
        f"deletion gain {fmt(f.deletion_gain, '+.2f')}, insertion gain {fmt(f.insertion_gain, '+.2f')}"
    )


def faithfulness_table(f: Faithfulness) -> Table:
    """Each figure next to the random orderings' and the gain over them (> 0: better than
    random)."""
    table = Table(
        title=f"faithfulness (forward passes only: {f.n_sequences} sequences, {f.compute_time_seconds:.2f}s)",
        title_justify="left",
        caption=(
            f"f_full {f.f_full:.3f}, f_empty {f.f_empty:.3f} nats; AUCs of normalised f over the fraction of "
            f"units moved; comprehensiveness/sufficiency: AOPC over {', '.join(f'{b:.0%}' for b in f.aopc_bins)}; "
            f"LDS over {f.n_ablations} ablations; random: mean of {f.n_random} orderings; removal: {f.removal}"
        ),
        caption_justify="left",
    )
    for name in ("figure", "scores", "random", "gain", "better"):
        table.add_column(name, justify="left" if name in ("figure", "better") else "right")
    for label, field, random_field, gain_field, better, unit in ROWS:
        table.add_row(
            label,
            fmt(getattr(f, field), unit=unit),
            fmt(getattr(f, random_field), unit=unit),
            fmt(getattr(f, gain_field), "+.3f"),
            better,
        )
    return table
