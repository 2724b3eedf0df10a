"""The faithfulness package's pure parts: orderings, masks, curves, AOPC, LDS, statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from fairforge_attr.faithfulness import AOPC_BINS, FRACTIONS, PER_ORDERING, FaithfulnessOptions
from fairforge_attr.faithfulness.metrics import (
    lds,
    mean_figures,
    normalized_auc,
    ordering_figures,
    random_lds,
)
from fairforge_attr.faithfulness.probes import (
    EMPTY,
    FULL,
    MaskTable,
    ablation_masks,
    add_ordering,
    by_magnitude,
    by_score,
    fractions_moved,
    random_orders,
    units_at,
)
from fairforge_attr.stats import quantile, rankdata, spearman, trapezoid


def test_units_at_rounds_up_so_every_fraction_moves_a_unit():
    assert [units_at(p, 8) for p in FRACTIONS] == [0, 1, 1, 2, 3, 4, 6, 8]
    assert [units_at(p, 100) for p in FRACTIONS] == [0, 5, 10, 20, 30, 50, 70, 100]
    assert [units_at(p, 8) for p in AOPC_BINS] == [1, 1, 1, 2, 4]
    assert units_at(0.3, 10) == 3  # 0.3 * 10 is 3.0000000000000004 in floating point


def test_orderings_break_ties_by_position():
    scores = np.array([0.5, -2.0, 0.5, 1.0, 0.0])
    assert by_magnitude(scores).tolist() == [1, 3, 0, 2, 4]
    assert by_score(scores).tolist() == [3, 0, 2, 4, 1]


def test_mask_table_keeps_each_mask_once():
    table = MaskTable(4)
    assert len(table) == 2 and table.array()[FULL].all() and not table.array()[EMPTY].any()
    row = table.add(np.array([True, False, True, True]))
    assert table.add(np.array([True, False, True, True])) == row and len(table) == 3


def test_ordering_masks_remove_and_keep_the_first_units():
    n = 10
    table = MaskTable(n)
    order = np.array([7, 2, 9, 0, 1, 3, 4, 5, 6, 8])
    rows = add_ordering(table, order, top_k=3)
    masks = table.array()
    for p, d, i in zip(FRACTIONS, rows.deletion, rows.insertion):
        k = units_at(p, n)
        assert set(np.flatnonzero(~masks[d])) == set(order[:k].tolist())
        assert set(np.flatnonzero(masks[i])) == set(order[:k].tolist())
    assert rows.deletion[0] == FULL and rows.deletion[-1] == EMPTY
    assert rows.insertion[0] == EMPTY and rows.insertion[-1] == FULL
    assert set(np.flatnonzero(~masks[rows.top_k[0]])) == {7, 2, 9}
    assert set(np.flatnonzero(masks[rows.top_k[1]])) == {7, 2, 9}
    # the stated cost bound: at most 16 new rows per ordering
    assert len(table) - 2 <= PER_ORDERING


def test_random_draws_are_seeded_and_shared_by_n_units():
    opts = FaithfulnessOptions(n_random=4, n_ablations=6, seed=3)
    assert np.array_equal(random_orders(9, opts), random_orders(9, opts))
    assert np.array_equal(ablation_masks(9, opts), ablation_masks(9, opts))
    other = FaithfulnessOptions(n_random=4, n_ablations=6, seed=4)
    assert not np.array_equal(random_orders(9, opts), random_orders(9, other))
    assert not np.array_equal(ablation_masks(9, opts), ablation_masks(9, other))
    for order in random_orders(9, opts):
        assert sorted(order.tolist()) == list(range(9))
    many = ablation_masks(50, FaithfulnessOptions(n_ablations=200))
    assert abs(many.mean() - 0.5) < 0.02  # keep probability 0.5


def test_normalized_auc_of_straight_lines_and_undefined_span():
    x = fractions_moved(10)
    full, empty = 0.0, -4.0
    falling = full + (empty - full) * x  # f falls linearly with the fraction removed
    assert normalized_auc(falling, full, empty, x) == pytest.approx(0.5)
    assert normalized_auc(np.full(len(x), empty), full, empty, x) == pytest.approx(0.0)
    assert normalized_auc(falling, -1.0, -1.0, x) is None  # the prompt does not matter
    assert normalized_auc(falling, -2.0, -1.0, x) is None  # removing everything raises f


def test_ordering_figures_on_an_additive_f():
    """f = f_empty + sum of kept weights: an ordering by the true weights deletes fastest,
    its reverse slowest; comprehensiveness is the removed weight."""
    n = 8
    weights = np.array([3.0, 0.1, 1.0, 0.0, 2.0, 0.5, 0.2, 0.05])
    table = MaskTable(n)
    best = add_ordering(table, by_magnitude(weights), top_k=2)
    worst = add_ordering(table, by_magnitude(weights)[::-1].copy(), top_k=2)
    values = -10.0 + table.array().astype(float) @ weights
    good, bad = ordering_figures(best, values, n), ordering_figures(worst, values, n)
    assert good.deletion_auc < bad.deletion_auc and good.insertion_auc > bad.insertion_auc
    assert good.comprehensiveness_top_k == pytest.approx(5.0)  # weights 3 + 2 removed
    assert good.sufficiency_top_k == pytest.approx(weights.sum() - 5.0)
    k = [units_at(b, n) for b in AOPC_BINS]
    expected = np.mean([np.sort(weights)[::-1][:j].sum() for j in k])
    assert good.comprehensiveness == pytest.approx(expected)
    both = mean_figures([good, bad])
    assert both.deletion_auc == pytest.approx((good.deletion_auc + bad.deletion_auc) / 2)


def test_lds_is_one_for_the_true_weights_and_about_zero_for_shuffled_ones():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=20)
    ablations = ablation_masks(20, FaithfulnessOptions(n_ablations=64))
    f = ablations.astype(float) @ weights + 1.5
    assert lds(weights, ablations, f) == pytest.approx(1.0)
    orders = random_orders(20, FaithfulnessOptions(n_random=64))
    assert abs(random_lds(weights, orders, ablations, f)) < 0.15


def test_spearman_and_ranks_equal_scipy():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 5, size=40).astype(float)  # many ties
    b = a + rng.normal(size=40)
    assert rankdata(a).tolist() == scipy_stats.rankdata(a).tolist()
    assert spearman(a, b) == pytest.approx(scipy_stats.spearmanr(a, b).statistic)
    assert spearman([1, 2, 3], [5, 5, 5]) is None and spearman([1], [2]) is None
    assert trapezoid([0, 0.5, 1], [1, 1, 0]) == pytest.approx(0.75)
    assert quantile([1, 2, 3, 4], 0.5) == 2.5 and quantile([], 0.5) is None
