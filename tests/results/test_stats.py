"""Statistics over replicates: bands, distributions, time-to-target, paired comparisons, summaries."""

from __future__ import annotations

import numpy as np
import pytest

from optui.results import UnitResult
from optui.results.stats import (band, bootstrap_mean_ci, distribution, final_values, metric_curve,
                         paired_comparison, summarise_unit, time_to_target)


def unit(minibatch, eval_steps=(), evals=None, diverged=None, total=None):
    mb = np.asarray(minibatch, dtype=np.float32)
    reps = mb.shape[0]
    return UnitResult(name="u", spec={}, minibatch_loss=mb, eval_steps=np.asarray(eval_steps, int),
                      eval={k: np.asarray(v, float) for k, v in (evals or {}).items()},
                      diverged_at=np.asarray(diverged if diverged is not None else [-1] * reps),
                      total_steps=total or mb.shape[1])


def test_band_minmax_iqr_and_median():
    v = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0]])
    mid, lo, hi = band(v, "minmax", "mean")
    np.testing.assert_allclose(mid, [3.0, 5.0])
    np.testing.assert_allclose(lo, [1.0, 2.0])
    np.testing.assert_allclose(hi, [5.0, 9.0])
    mid, lo, hi = band(v, "iqr", "median")
    np.testing.assert_allclose(mid, [3.0, 4.0])
    np.testing.assert_allclose(lo, [2.0, 3.0])
    np.testing.assert_allclose(hi, [4.0, 6.5])


def test_band_ci95_brackets_the_mean_and_is_reproducible():
    rng = np.random.default_rng(5)
    v = rng.normal(10.0, 1.0, size=(40, 30))
    mid, lo, hi = band(v, "ci95")
    assert np.all(lo < mid) and np.all(mid < hi)
    # about 2 standard errors either side of the mean
    np.testing.assert_allclose(hi - lo, 2 * 1.96 * v.std(axis=0) / np.sqrt(40), rtol=0.3)
    _, lo2, hi2 = band(v, "ci95")
    np.testing.assert_array_equal(lo, lo2)
    np.testing.assert_array_equal(hi, hi2)


def test_band_ignores_nan_and_rejects_bad_arguments():
    v = np.array([[1.0, np.nan], [3.0, np.nan]])
    mid, lo, hi = band(v, "ci95")
    assert mid[0] == 2.0 and np.isnan(mid[1]) and np.isnan(lo[1]) and np.isnan(hi[1])
    with pytest.raises(ValueError, match="band kind"):
        band(v, "stddev")
    with pytest.raises(ValueError, match="centre"):
        band(v, centre="mode")
    with pytest.raises(ValueError, match="replicates, points"):
        band(np.ones(3))


def test_bootstrap_ci_of_constant_is_a_point():
    lo, hi = bootstrap_mean_ci(np.full(7, 2.5))
    assert float(lo) == pytest.approx(2.5) and float(hi) == pytest.approx(2.5)


def test_distribution_statistics():
    d = distribution([1.0, 2.0, 3.0, 4.0, np.nan])
    assert d["n"] == 4
    assert d["mean"] == 2.5 and d["median"] == 2.5
    assert d["min"] == 1.0 and d["max"] == 4.0
    assert d["iqr"] == pytest.approx(1.5)
    assert 1.0 <= d["ci95"][0] < 2.5 < d["ci95"][1] <= 4.0
    empty = distribution([np.nan])
    assert empty["n"] == 0 and empty["mean"] is None and empty["ci95"] is None


def test_time_to_target_uses_the_mean_curve():
    pct = np.array([0.0, 25.0, 50.0, 75.0, 100.0])
    v = np.array([[1.0, 0.8, 0.4, 0.2, 0.1], [1.0, 0.9, 0.7, 0.3, 0.1]])
    assert time_to_target(pct, v, 0.5) == 75.0  # mean at 50% is 0.55, at 75% 0.25
    assert time_to_target(pct, v, 0.05) is None
    assert time_to_target(pct, v[:0], 0.5) is None


def test_paired_comparison_counts_wins_per_pair():
    a = np.array([1.0, 1.0, 3.0, 1.0, np.nan])
    b = np.array([2.0, 2.0, 2.0, 1.0, 0.0])
    p = paired_comparison(a, b)
    assert p["pairs"] == 4
    assert p["p_a_below_b"] == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    assert 0.0 <= p["ci95"][0] <= p["p_a_below_b"] <= p["ci95"][1] <= 1.0
    assert p["mean_difference"] == pytest.approx((-1 - 1 + 1 + 0) / 4)
    with pytest.raises(ValueError, match="equal replicate counts"):
        paired_comparison(a, b[:3])


def test_final_values_leave_out_diverged_replicates():
    u = unit([[1.0] * 200, [2.0] * 199 + [np.nan]], eval_steps=[0, 100, 200],
             evals={"test_loss": [[3, 2, 1], [3, 2, np.nan]]}, diverged=[-1, 199])
    np.testing.assert_array_equal(final_values(u, "test_loss"), [1.0, np.nan])
    np.testing.assert_allclose(final_values(u, "minibatch_loss"), [1.0, np.nan])
    assert final_values(u, "train_loss") is None


def test_metric_curve_places_points_at_percent_of_run():
    u = unit(np.ones((2, 4)), eval_steps=[0, 5, 10], evals={"train_loss": np.ones((2, 3))}, total=10)
    x, v = metric_curve(u, "minibatch_loss")
    np.testing.assert_allclose(x, [10, 20, 30, 40])  # 4 of 10 steps done
    x, v = metric_curve(u, "train_loss")
    np.testing.assert_allclose(x, [0, 50, 100])
    assert metric_curve(u, "test_loss") is None


def test_summarise_unit_with_and_without_full_eval():
    full = unit(np.ones((3, 10)), eval_steps=[0, 10],
                evals={"train_loss": [[2, 0.5], [2, 0.7], [2, 0.9]],
                       "test_loss": [[2, 0.6], [2, 0.8], [2, 1.0]],
                       "test_accuracy": [[0.1, 0.9], [0.1, 0.8], [0.1, 0.7]]})
    s = summarise_unit(full)
    assert s["replicates"] == 3 and s["diverged"] == 0
    assert s["final_train_loss"]["mean"] == pytest.approx(0.7)
    assert s["final_test_loss"]["median"] == pytest.approx(0.8)
    assert s["final_test_accuracy"]["max"] == pytest.approx(0.9)
    imported = unit(np.ones((2, 5)), eval_steps=[5], evals={"test_loss": [[0.2], [0.4]]})
    assert "final_train_loss" not in summarise_unit(imported)  # only what was recorded
    s = summarise_unit(imported, ["train_loss", "test_loss"])  # declared: present, None if not recorded
    assert s["final_train_loss"] is None
    assert s["final_test_loss"]["mean"] == pytest.approx(0.3)
    assert s["final_minibatch_loss"]["n"] == 2
    nothing = unit(np.zeros((2, 0)))
    s = summarise_unit(nothing, ["train_loss"])
    assert s["final_train_loss"] is None and "final_minibatch_loss" not in s


# --- scipy.stats against the hand-written bootstrap it replaced -----------------------------------

def reference_bootstrap(values, seed, resamples=2000, level=0.95):
    """The percentile bootstrap optui computed by hand before scipy.stats did it: resample counts
    as weights, means as a matrix product. Kept here as the oracle for the agreement tests."""
    values = np.asarray(values, dtype=float)
    flat = values.reshape(values.shape[0], -1)
    n = flat.shape[0]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    counts = np.zeros((resamples, n))
    np.add.at(counts, (np.arange(resamples)[:, None], idx), 1.0)
    means = (counts / n) @ flat
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail], axis=0)
    return lo.reshape(values.shape[1:]), hi.reshape(values.shape[1:])


def test_scipy_bootstrap_agrees_with_the_hand_written_one_within_resampling_noise():
    rng = np.random.default_rng(11)
    values = rng.lognormal(0.0, 0.5, size=(20, 400))  # skewed, like losses
    se = values.std(axis=0, ddof=1) / np.sqrt(values.shape[0])
    lo, hi = bootstrap_mean_ci(values)
    ref_lo, ref_hi = reference_bootstrap(values, seed=123)  # another seed: only noise differs
    # The Monte Carlo error of a 2.5% quantile of 2,000 resamples is about 0.06 standard errors.
    for new, ref in ((lo, ref_lo), (hi, ref_hi)):
        err = np.abs(new - ref) / se
        assert err.mean() < 0.1 and err.max() < 0.35
    assert not np.allclose(lo, ref_lo)  # a real second sample of the noise, not the same numbers


def test_band_ci95_keeps_per_column_nan_handling_after_scipy():
    rng = np.random.default_rng(3)
    values = rng.normal(1.0, 0.2, size=(12, 60))
    values[2, 30:] = np.nan  # replicate 2 diverged half-way
    values[5, 45:] = np.inf  # replicate 5 later
    mid, lo, hi = band(values, "ci95")
    for cols, rows in ((slice(0, 30), slice(None)), (slice(30, 45), np.r_[0:2, 3:12]),
                       (slice(45, 60), np.r_[0:2, 3:5, 6:12])):
        ref_lo, ref_hi = reference_bootstrap(values[rows, cols], seed=7)
        se = values[rows, cols].std(axis=0, ddof=1) / np.sqrt(values[rows, cols].shape[0])
        assert np.all(np.abs(lo[cols] - ref_lo) / se < 0.35)
        assert np.all(np.abs(hi[cols] - ref_hi) / se < 0.35)
        np.testing.assert_allclose(mid[cols], values[rows, cols].mean(axis=0))


def test_paired_comparison_reports_scipy_tests_beside_the_win_rate():
    from scipy import stats as sst

    rng = np.random.default_rng(4)
    b = rng.normal(1.0, 0.1, 20)
    a = b - rng.normal(0.05, 0.05, 20)  # A is lower in most pairs
    a[3] = np.nan  # a diverged replicate drops its pair
    p = paired_comparison(a, b)
    keep = np.isfinite(a)
    assert p["pairs"] == 19
    assert p["wilcoxon_p"] == pytest.approx(sst.wilcoxon(a[keep], b[keep]).pvalue)
    assert p["ttest_p"] == pytest.approx(sst.ttest_rel(a[keep], b[keep]).pvalue)
    assert p["wilcoxon_p"] < 0.01 and p["ttest_p"] < 0.01
    wins = (a[keep] < b[keep]).astype(float)
    ref_lo, ref_hi = reference_bootstrap(wins, seed=99)
    assert abs(p["ci95"][0] - float(ref_lo)) <= 0.06 and abs(p["ci95"][1] - float(ref_hi)) <= 0.06
    # Tests the pairs cannot support give None rather than a misleading number.
    same = paired_comparison([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same["wilcoxon_p"] is None and same["ttest_p"] is None
    shifted = paired_comparison([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    assert shifted["ttest_p"] is None and shifted["wilcoxon_p"] == pytest.approx(0.25)
    one = paired_comparison([1.0], [2.0])
    assert one["pairs"] == 1 and one["ci95"] == [1.0, 1.0] and one["wilcoxon_p"] is None


def test_bootstrap_of_one_or_no_replicates():
    lo, hi = bootstrap_mean_ci(np.array([[1.0, 2.0]]))
    np.testing.assert_array_equal(lo, [1.0, 2.0])
    np.testing.assert_array_equal(hi, [1.0, 2.0])
    lo, hi = bootstrap_mean_ci(np.zeros((0, 3)))
    assert lo.shape == (3,) and np.isnan(lo).all() and np.isnan(hi).all()
