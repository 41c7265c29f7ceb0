"""Statistics over seed replicates: bands, final-loss distributions, time-to-target, paired tests.

numpy, with scipy.stats for the bootstrap and the paired tests. Arrays of replicates are (R,) or
(R, T); NaN marks a value a replicate never produced (it diverged, or the run stopped early) and
is left out of every statistic.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any

import numpy as np

BAND_KINDS = ("minmax", "iqr", "ci95")
CENTRES = ("mean", "median")
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
# Upper bound on resamples x steps held at once by the per-step bootstrap.
_BOOTSTRAP_BLOCK = 4_000_000


def _finite_rows(values: np.ndarray) -> np.ndarray:
    """Rows (replicates) whose every value is finite; NaN tails mean the replicate diverged."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        return values[np.isfinite(values)]
    return values[np.isfinite(values).all(axis=1)]


def bootstrap_mean_ci(values: np.ndarray, level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                      seed: int = BOOTSTRAP_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap CI of the mean over axis 0 of (R,) or (R, T) values (all finite).

    scipy.stats.bootstrap does the resampling, in batches that keep resamples x values held at
    once under a bound. One replicate gives a CI of zero width (its value); none gives NaN.
    """
    from scipy import stats

    values = np.asarray(values, dtype=float)
    n = values.shape[0]
    if n < 2:
        point = values[0].copy() if n else np.full(values.shape[1:], np.nan)
        return point, point.copy()
    result = stats.bootstrap((values,), np.mean, n_resamples=resamples, vectorized=True, axis=0,
                             confidence_level=level, method="percentile",
                             batch=max(1, _BOOTSTRAP_BLOCK // values.size),
                             rng=np.random.default_rng(seed))
    return np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)


def band(values: np.ndarray, kind: str = "minmax", centre: str = "mean",
         seed: int = BOOTSTRAP_SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(R, T) replicate curves -> (centre, lo, hi), each (T,).

    kind: minmax (envelope of all replicates), iqr (25th-75th percentile), ci95 (percentile
    bootstrap CI of the mean, fixed seed). Columns with no finite value give NaN.
    """
    if kind not in BAND_KINDS:
        raise ValueError(f"band kind must be one of {', '.join(BAND_KINDS)}, got {kind!r}")
    if centre not in CENTRES:
        raise ValueError(f"band centre must be one of {', '.join(CENTRES)}, got {centre!r}")
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"band expects (replicates, points), got shape {values.shape}")
    t = values.shape[1]
    nan = np.full(t, np.nan)
    if values.shape[0] == 0 or t == 0:
        return nan, nan.copy(), nan.copy()
    finite = np.isfinite(values)
    has_any = finite.any(axis=0)
    masked = np.where(finite, values, np.nan)
    with np.errstate(all="ignore"), _quiet_nan_warnings():
        mid = np.nanmean(masked, axis=0) if centre == "mean" else np.nanmedian(masked, axis=0)
        if kind == "minmax":
            lo, hi = np.nanmin(masked, axis=0), np.nanmax(masked, axis=0)
        elif kind == "iqr":
            lo, hi = np.nanpercentile(masked, [25, 75], axis=0)
        else:
            lo, hi = _columnwise_ci(masked, seed)
    for arr in (mid, lo, hi):
        arr[~has_any] = np.nan
    return mid, lo, hi


def _columnwise_ci(masked: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap CI per column; columns sharing the same set of finite replicates go together."""
    finite = np.isfinite(masked)
    lo = np.full(masked.shape[1], np.nan)
    hi = np.full(masked.shape[1], np.nan)
    patterns, inverse = np.unique(finite.T, axis=0, return_inverse=True)
    for k, pattern in enumerate(patterns):
        if not pattern.any():
            continue
        cols = np.flatnonzero(inverse.ravel() == k)
        lo[cols], hi[cols] = bootstrap_mean_ci(masked[pattern][:, cols], seed=seed)
    return lo, hi


@contextlib.contextmanager
def _quiet_nan_warnings():
    """All-NaN columns are expected (diverged replicates); their RuntimeWarnings are noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield


def _num(x: float) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def distribution(values: np.ndarray, seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """Summary of one value per replicate: n, mean, median, min, max, iqr, ci95 (of the mean).

    Non-finite values are left out; with none left every statistic is None.
    """
    x = _finite_rows(np.asarray(values, dtype=float).ravel())
    if x.size == 0:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None, "iqr": None,
                "ci95": None}
    q25, q75 = np.percentile(x, [25, 75])
    lo, hi = bootstrap_mean_ci(x, seed=seed)
    return {
        "n": int(x.size),
        "mean": _num(x.mean()),
        "median": _num(np.median(x)),
        "min": _num(x.min()),
        "max": _num(x.max()),
        "iqr": _num(q75 - q25),
        "ci95": [_num(lo), _num(hi)],
    }


def interval(values: np.ndarray, kind: str, seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """The band of one value per replicate: minmax (range), iqr (25th-75th percentile) or ci95
    (bootstrap CI of the mean); non-finite values left out, None when none is left."""
    if kind not in BAND_KINDS:
        raise ValueError(f"band kind must be one of {', '.join(BAND_KINDS)}, got {kind!r}")
    x = _finite_rows(np.asarray(values, dtype=float).ravel())
    if x.size == 0:
        return None
    if kind == "minmax":
        lo, hi = x.min(), x.max()
    elif kind == "iqr":
        lo, hi = np.percentile(x, [25, 75])
    else:
        lo, hi = bootstrap_mean_ci(x, seed=seed)
    return float(lo), float(hi)


def time_to_target(percent: np.ndarray, values: np.ndarray, target: float,
                   higher_is_better: bool = False) -> float | None:
    """The % of the run at which the mean over healthy replicates first falls below target
    (first rises above it for a metric where higher is better, such as an accuracy)."""
    rows = _finite_rows(values)
    if rows.size == 0 or rows.ndim != 2 or rows.shape[1] == 0:
        return None
    mean = rows.mean(axis=0)
    below = np.flatnonzero(mean > target if higher_is_better else mean < target)
    return float(np.asarray(percent, dtype=float)[below[0]]) if below.size else None


def paired_comparison(a: np.ndarray, b: np.ndarray, seed: int = BOOTSTRAP_SEED,
                      resamples: int = BOOTSTRAP_RESAMPLES, higher_is_better: bool = False) -> dict[str, Any]:
    """P(A ends better than B) over replicates paired by PRNG key, with a bootstrap 95% CI, beside
    the Wilcoxon signed-rank and paired t-test p-values of the differences (two-sided).

    Better is lower (a loss), or higher with higher_is_better (an accuracy); the key keeps its
    historical name p_a_below_b. a and b hold one final value per replicate, replicate i of each
    run with the same key. Pairs where either side is not finite are dropped; ties count one half.
    A test that the pairs cannot support (fewer than two, or every difference zero) gives None.
    """
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs equal replicate counts, got {a.size} and {b.size}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    wins = (a > b if higher_is_better else a < b) + 0.5 * (a == b)
    if wins.size == 0:
        return {"pairs": 0, "p_a_below_b": None, "ci95": None, "mean_difference": None,
                "wilcoxon_p": None, "ttest_p": None}
    lo, hi = bootstrap_mean_ci(wins, resamples=resamples, seed=seed)
    return {
        "pairs": int(wins.size),
        "p_a_below_b": float(wins.mean()),
        "ci95": [float(lo), float(hi)],
        "mean_difference": float((a - b).mean()),
        **_paired_tests(a, b),
    }


def _paired_tests(a: np.ndarray, b: np.ndarray) -> dict[str, float | None]:
    from scipy import stats

    diff = a - b
    if diff.size < 2 or not np.any(diff != 0):
        return {"wilcoxon_p": None, "ttest_p": None}
    with _quiet_nan_warnings():
        wilcoxon = stats.wilcoxon(a, b).pvalue
        # Identical differences have no spread: t is infinite and its p-value says nothing.
        ttest = stats.ttest_rel(a, b).pvalue if np.ptp(diff) > 0 else math.nan
    return {"wilcoxon_p": _num(wilcoxon), "ttest_p": _num(ttest)}


def final_values(unit: Any, metric: str) -> np.ndarray | None:
    """One final value per replicate for a metric, NaN for diverged replicates; None if absent.

    minibatch_loss uses the mean of the last 1% of steps: a single minibatch is too noisy.
    """
    healthy = np.asarray(unit.healthy)
    if metric == "minibatch_loss":
        mb = np.asarray(unit.minibatch_loss, dtype=float)
        if mb.ndim != 2 or mb.shape[1] == 0:
            return None
        tail = max(1, mb.shape[1] // 100)
        with np.errstate(all="ignore"), _quiet_nan_warnings():
            out = mb[:, -tail:].mean(axis=1)
    else:
        arr = unit.eval.get(metric)
        if arr is None:
            return None
        arr = np.asarray(arr, dtype=float)
        if arr.ndim != 2 or arr.shape[1] == 0:
            return None
        out = arr[:, -1].copy()
    out[~healthy] = np.nan
    return out


def metric_curve(unit: Any, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(percent of run (T,), values (R, T)) for a metric, or None when the unit lacks it.

    Minibatch loss of step index i is placed at (i + 1) / total: the share of the run done.
    """
    if metric == "minibatch_loss":
        values = np.asarray(unit.minibatch_loss, dtype=float)
        if values.ndim != 2 or values.shape[1] == 0:
            return None
        steps = np.arange(1, values.shape[1] + 1)
    else:
        values = unit.eval.get(metric)
        if values is None:
            return None
        values = np.asarray(values, dtype=float)
        if values.ndim != 2 or values.shape[1] == 0:
            return None
        steps = np.asarray(unit.eval_steps)[: values.shape[1]]
    total = unit.total_steps if unit.total_steps > 0 else max(int(steps[-1]), 1)
    return 100.0 * steps.astype(float) / total, values


def summarise_unit(unit: Any, metrics: Any = None) -> dict[str, Any]:
    """Headless summary of one unit: counts, wall time and final-value distributions.

    metrics: the names the run's metrics declare, in order (RunMetrics.names). Each is always
    present as final_<metric> (None when the unit has no such eval, as for imported histories);
    every other recorded eval metric appears when recorded; final_minibatch_loss
    when minibatch losses exist.
    """
    out: dict[str, Any] = {
        "replicates": unit.replicates,
        "diverged": unit.diverged,
        "wall_time_s": float(unit.wall_time_s),
        "status": unit.status,
        "total_steps": int(unit.total_steps),
        "steps_done": int(np.asarray(unit.minibatch_loss).shape[-1]) if np.asarray(unit.minibatch_loss).ndim == 2 else 0,
    }
    declared = list(metrics) if metrics is not None else []
    names = declared + sorted(k for k in unit.eval if k not in declared)
    for metric in names:
        finals = final_values(unit, metric)
        if finals is None and metric not in declared:
            continue
        out[f"final_{metric}"] = None if finals is None else distribution(finals)
    mb = final_values(unit, "minibatch_loss")
    if mb is not None:
        out["final_minibatch_loss"] = distribution(mb)
    return out
