"""What a reward model's reward differences say: accuracy, calibration, shape, outliers.

docs/methods.md, "Evaluation", defines each figure and why it is computed so.

Everything takes d = r_chosen - r_rejected as one numpy array and is
vectorised, so a million pairs take well under a second. Conventions, chosen to
match the papers' code so numbers can be compared with their tables:

- accuracy counts d > 0 and half of each tie (d = 0), as MORE's code does by
  scoring both orderings of a pair (a tie is right in one of them). The number
  of ties is kept beside it: a model that ties often (rewards rounded to bf16,
  identical texts) earns half marks on pairs it never told apart.
- ECE is MORE's two-entry form: each pair enters as (σ(d), 1) and (1 - σ(d), 0),
  bins are equal-width over [0, 1] and a value on an inner edge falls in the
  lower bin (numpy's searchsorted, as sklearn's calibration_curve does).
- The reliability table is the confidence form, c = max(σ(d), 1 - σ(d)) in
  equal-width bins over [0.5, 1] with the same edge rule. A tie is half-correct
  there too (confidence 0.5, accuracy 0.5 in the lowest bin), as in accuracy; so
  with B bins its ECE equals the two-entry ECE with 2B bins, ties included,
  except for pairs whose σ(d) lies on an edge other than 0.5.
- std, skewness and excess kurtosis are the population (biased) moments, as
  numpy's std and scipy's skew/kurtosis give by default.
- Tukey's fences use numpy's linearly interpolated quartiles.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

ECE_BINS = (5, 10, 20)  # MORE's table columns
DEFAULT_ECE_BINS = 10
DEFAULT_RELIABILITY_BINS = 10


def sigmoid(d: np.ndarray) -> np.ndarray:
    """σ(d) without overflow for large |d|."""
    return np.exp(-np.logaddexp(0.0, -np.asarray(d, dtype=np.float64)))


def credit(d: np.ndarray) -> np.ndarray:
    """Each pair's share of a correct answer: 1 for d > 0, 1/2 for a tie, 0 for d < 0 (accuracy is its mean)."""
    d = np.asarray(d, dtype=np.float64)
    return (d > 0) + 0.5 * (d == 0)


def accuracy(d: np.ndarray) -> float:
    """The share of pairs with d > 0, a tie counting half."""
    d = np.asarray(d, dtype=np.float64)
    if not d.size:
        return float("nan")
    return float((np.count_nonzero(d > 0) + 0.5 * np.count_nonzero(d == 0)) / d.size)


def ties(d: np.ndarray) -> int:
    """How many pairs have d = 0 exactly: each counts half in accuracy."""
    return int(np.count_nonzero(np.asarray(d, dtype=np.float64) == 0))


def _bin_ids(values: np.ndarray, low: float, high: float, n_bins: int) -> np.ndarray:
    edges = np.linspace(low, high, n_bins + 1)
    return np.searchsorted(edges[1:-1], values, side="left")


def ece(d: np.ndarray, n_bins: int = DEFAULT_ECE_BINS) -> float:
    """MORE's two-entry ECE: Σ_b |Σ_{i∈b} p_i - Σ_{i∈b} y_i| / (2n)."""
    return _ece(sigmoid(d), n_bins)


def _ece(p: np.ndarray, n_bins: int) -> float:
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, not {n_bins}")
    if not p.size:
        return float("nan")
    q = 1.0 - p
    ids_p, ids_q = _bin_ids(p, 0.0, 1.0, n_bins), _bin_ids(q, 0.0, 1.0, n_bins)
    # the (p, 1) entries bring p and a label each; the (1 - p, 0) entries bring 1 - p and no label
    prob_sums = np.bincount(ids_p, weights=p, minlength=n_bins) + np.bincount(ids_q, weights=q, minlength=n_bins)
    label_sums = np.bincount(ids_p, minlength=n_bins)
    return float(np.abs(prob_sums - label_sums).sum() / (2 * p.size))


def ece_contributions(d: np.ndarray, n_bins: int = DEFAULT_ECE_BINS) -> np.ndarray:
    """Each pair's share of every bin's |Σ p − Σ y|, as an (n, n_bins) array: ECE = Σ_b |Σ_i row_i[b]| / (2n).

    What a bootstrap needs: the ECE of any resample (each pair counted w_i times) is |w @ rows|.sum() / (2 Σ w),
    with the same bins and edge rule as ece()."""
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, not {n_bins}")
    p = sigmoid(d)
    q = 1.0 - p
    rows = np.zeros((p.size, n_bins))
    at = np.arange(p.size)
    np.add.at(rows, (at, _bin_ids(p, 0.0, 1.0, n_bins)), p - 1.0)  # the (p, 1) entry: p and a label
    np.add.at(rows, (at, _bin_ids(q, 0.0, 1.0, n_bins)), q)  # the (1 - p, 0) entry: 1 - p, no label
    return rows


@dataclass(frozen=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    confidence: float  # mean confidence of the bin's pairs; NaN when empty
    accuracy: float  # share of the bin's pairs with d > 0, a tie counting half; NaN when empty


def reliability(d: np.ndarray, n_bins: int = DEFAULT_RELIABILITY_BINS) -> list[ReliabilityBin]:
    """The reliability table: confidence max(σ(d), 1-σ(d)) in `n_bins` equal bins over [0.5, 1].

    A bin's accuracy counts a tie half, as accuracy() does: the two-entry ECE puts a tie's (0.5, 1) and
    (0.5, 0) in one bin, half right, so this table's ECE still equals ece() at 2·n_bins bins when there are ties.
    """
    d = np.asarray(d, dtype=np.float64)
    return _reliability(d, sigmoid(d), n_bins)


def _reliability(d: np.ndarray, p: np.ndarray, n_bins: int) -> list[ReliabilityBin]:
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, not {n_bins}")
    confidence = np.maximum(p, 1.0 - p)
    ids = _bin_ids(confidence, 0.5, 1.0, n_bins)
    counts = np.bincount(ids, minlength=n_bins)
    conf_sums = np.bincount(ids, weights=confidence, minlength=n_bins)
    correct = np.bincount(ids, weights=credit(d), minlength=n_bins)
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf, acc = conf_sums / counts, correct / counts
    return [ReliabilityBin(float(edges[b]), float(edges[b + 1]), int(counts[b]), float(mean_conf[b]), float(acc[b]))
            for b in range(n_bins)]


def reliability_ece(bins: list[ReliabilityBin]) -> float:
    """The confidence-form ECE of a reliability table: Σ_b (n_b / n) · |acc_b - conf_b|."""
    n = sum(b.count for b in bins)
    if not n:
        return float("nan")
    return float(sum(b.count * abs(b.accuracy - b.confidence) for b in bins if b.count) / n)


@dataclass(frozen=True)
class Distribution:
    n: int
    mean: float
    std: float
    skewness: float
    excess_kurtosis: float
    share_negative: float  # share of d < 0 (ties are neither)


def distribution(d: np.ndarray) -> Distribution:
    d = np.asarray(d, dtype=np.float64)
    if not d.size:
        nan = float("nan")
        return Distribution(0, nan, nan, nan, nan, nan)
    mean = d.mean()
    centred = d - mean
    squared = centred * centred
    m2 = squared.mean()
    if m2 > 0:
        skewness = np.dot(squared, centred) / d.size / m2**1.5
        kurtosis = np.dot(squared, squared) / d.size / m2**2 - 3.0
    else:  # all equal: no shape to speak of
        skewness = kurtosis = float("nan")
    return Distribution(int(d.size), float(mean), float(np.sqrt(m2)), float(skewness), float(kurtosis),
                        float(np.mean(d < 0)))


@dataclass(frozen=True)
class Outliers:
    q1: float
    q3: float
    low_fence: float  # Q1 - 1.5·IQR
    high_fence: float  # Q3 + 1.5·IQR
    n_positive: int  # above the high fence
    mean_positive: float  # NaN when there are none
    n_negative: int  # below the low fence
    mean_negative: float
    positive: np.ndarray  # indices into d, largest first
    negative: np.ndarray  # indices into d, smallest first


def tukey_outliers(d: np.ndarray) -> Outliers:
    d = np.asarray(d, dtype=np.float64)
    if not d.size:
        nan, none = float("nan"), np.array([], dtype=np.int64)
        return Outliers(nan, nan, nan, nan, 0, nan, 0, nan, none, none)
    q1, q3 = np.percentile(d, [25, 75])
    iqr = q3 - q1
    low, high = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    above, below = np.flatnonzero(d > high), np.flatnonzero(d < low)
    above = above[np.argsort(-d[above], kind="stable")]
    below = below[np.argsort(d[below], kind="stable")]
    mean = lambda idx: float(d[idx].mean()) if idx.size else float("nan")  # noqa: E731
    return Outliers(float(q1), float(q3), float(low), float(high), int(above.size), mean(above),
                    int(below.size), mean(below), above, below)


@dataclass(frozen=True)
class Summary:
    """Every figure of docs/methods.md, "Evaluation", for one set of pairs (one job, one source or all)."""

    n: int
    accuracy: float  # a tie counting half
    ties: int  # pairs with d = 0
    ece: dict[int, float]  # n_bins -> two-entry ECE
    reliability: list[ReliabilityBin]
    distribution: Distribution
    outliers: Outliers


def summarize(d: np.ndarray, *, ece_bins: tuple[int, ...] = ECE_BINS,
              reliability_bins: int = DEFAULT_RELIABILITY_BINS) -> Summary:
    d = np.asarray(d, dtype=np.float64)
    p = sigmoid(d)  # once, for every ECE and the reliability table
    return Summary(int(d.size), accuracy(d), ties(d), {b: _ece(p, b) for b in ece_bins},
                   _reliability(d, p, reliability_bins), distribution(d), tukey_outliers(d))


ALL = "all"  # the key of the summary over every source


def summarize_by_source(d: np.ndarray, sources: np.ndarray, names: list[str] | None = None,
                        **options) -> dict[str, Summary]:
    """One summary per source (in name order), then ALL over every pair; outlier indices index `d`.

    `sources`: each pair's source name — or, faster for a million pairs, integer codes into `names`.
    """
    d = np.asarray(d, dtype=np.float64)
    sources = np.asarray(sources)
    if names is None:
        names, codes = np.unique(sources, return_inverse=True) if sources.size else ([], np.array([], int))
    else:
        codes = sources
    result: dict[str, Summary] = {}
    for code, name in sorted(enumerate(names), key=lambda item: str(item[1])):
        members = np.flatnonzero(codes == code)
        if not members.size:
            continue
        summary = summarize(d[members], **options)
        outliers = summary.outliers
        result[str(name)] = replace(summary, outliers=replace(outliers, positive=members[outliers.positive],
                                                                 negative=members[outliers.negative]))
    result[ALL] = summarize(d, **options)
    return result


def histogram(d: np.ndarray, bins: int, value_range: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(counts, edges) of d; give several jobs the same `value_range` to compare them bin for bin."""
    d = np.asarray(d, dtype=np.float64)
    if value_range is None:
        value_range = (float(d.min()), float(d.max())) if d.size else (0.0, 1.0)
    if value_range[0] == value_range[1]:
        value_range = (value_range[0] - 0.5, value_range[1] + 0.5)
    return np.histogram(d, bins=bins, range=value_range)
