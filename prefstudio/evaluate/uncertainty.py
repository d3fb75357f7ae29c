"""How sure a comparison is: intervals over seeds, a paired bootstrap over test pairs, a power note.

docs/methods.md, "Comparing runs: intervals and tests", states every choice. In short:

- A *cell* is one setting trained with several seeds. Per cell, each figure's mean over
  seeds and a 95 % Student-t interval, mean ± t(0.975, n−1)·s/√n (s with n−1 degrees of freedom).
- Two cells are compared on the same test pairs by a paired bootstrap, seeds pooled: draw b
  resamples the pair indices with replacement (`rng.integers(0, N, N)`, the b-th such call of
  `numpy.random.default_rng(seed)`), the same indices for both cells and every seed of each;
  a cell's figure on the draw is the mean over its seeds; the draw gives the difference.
  The interval is the 2.5th and 97.5th percentiles of the B differences (numpy's linear
  interpolation), p = 2·min(share ≤ 0, share ≥ 0), at least 1/(B+1) and at most 1; a
  difference within TIE of zero counts as zero on both sides.
- The effect size is Cohen's d over seeds: the difference over the pooled standard deviation
  of the per-seed figure in the two cells (NaN where neither has two seeds, or none varies).
- The power note is a normal approximation with two variance components (see power()).

Everything takes plain arrays (rewards as d = r_chosen − r_rejected, seeds × pairs) and is
seeded, so the same call gives the same numbers; numpy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from prefstudio.evaluate import metrics

DEFAULT_BOOTSTRAP = 2000
DEFAULT_SEED = 0
LEVEL = 0.95
TIE = 1e-12  # a bootstrap difference this close to zero is a tie: rounding must not decide a p-value
Z_975 = 1.959963984540054  # the normal's 97.5th percentile: α = 0.05, two-sided
Z_80 = 0.8416212335729143  # the normal's 80th percentile: 80 % power
CHUNK = 64  # bootstrap draws held at once: 64 × N resample counts

T_975 = (12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836, 2.446911851, 2.364624252, 2.306004135,
         2.262157163, 2.228138852, 2.200985160, 2.178812830, 2.160368656, 2.144786688, 2.131449546, 2.119905299,
         2.109815578, 2.100922040, 2.093024054, 2.085963447, 2.079613845, 2.073873068, 2.068657610, 2.063898562,
         2.059538553, 2.055529439, 2.051830516, 2.048407142, 2.045229642, 2.042272456)
"""Student t's 97.5th percentile for 1 to 30 degrees of freedom (scipy.stats.t.ppf, to 9 decimals)."""

ACCURACY_ALL, ACCURACY_AVG, ECE = "accuracy_all", "accuracy_avg", "ece"
FIGURES = (ACCURACY_ALL, ACCURACY_AVG, ECE)


def t_975(df: int) -> float:
    """Student t's 97.5th percentile: the table to 30 degrees of freedom, then the Cornish-Fisher series in 1/df
    (four terms: within 3e-8 of the exact value beyond 30)."""
    if df < 1:
        return math.nan
    if df <= len(T_975):
        return T_975[df - 1]
    z = Z_975
    terms = ((z**3 + z) / 4, (5 * z**5 + 16 * z**3 + 3 * z) / 96, (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
             (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160)
    return z + sum(term / df ** (k + 1) for k, term in enumerate(terms))


@dataclass(frozen=True)
class Interval:
    """A mean over seeds and its 95 % t-interval, mean ± half_width (NaN with a single seed)."""

    mean: float
    half_width: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def mean_interval(values) -> Interval:
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    n = int(values.size)
    if not n:
        return Interval(math.nan, math.nan, 0)
    if n == 1:
        return Interval(float(values[0]), math.nan, 1)
    return Interval(float(values.mean()), t_975(n - 1) * float(values.std(ddof=1)) / math.sqrt(n), n)


def seed_figures(d: np.ndarray, codes: np.ndarray, n_sources: int, ece_bins: int) -> dict[str, float]:
    """One seed's figures: accuracy over every pair, the unweighted mean of the per-source accuracies, ECE."""
    d = np.asarray(d, dtype=np.float64)
    per_source = [metrics.accuracy(d[codes == j]) for j in range(n_sources)]
    present = [a for a in per_source if a == a]
    return {ACCURACY_ALL: metrics.accuracy(d), ACCURACY_AVG: float(np.mean(present)) if present else math.nan,
            ECE: metrics.ece(d, ece_bins)}


def cell_figures(d: np.ndarray, codes: np.ndarray, n_sources: int, ece_bins: int) -> dict[str, np.ndarray]:
    """Each figure per seed (rows of d): what the intervals and the effect size are made of."""
    rows = [seed_figures(row, codes, n_sources, ece_bins) for row in np.atleast_2d(d)]
    return {name: np.array([row[name] for row in rows]) for name in FIGURES}


def resample_counts(n_pairs: int, bootstrap: int, seed: int, chunk: int = CHUNK):
    """Each draw's resample as counts per pair, `chunk` draws at a time: draw b is the b-th rng.integers(0, N, N)
    of default_rng(seed), so a loop drawing one resample at a time sees the very same indices."""
    rng = np.random.default_rng(seed)
    for start in range(0, bootstrap, chunk):
        k = min(chunk, bootstrap - start)
        idx = rng.integers(0, n_pairs, size=(k, n_pairs))
        flat = (np.arange(k)[:, None] * n_pairs + idx).ravel()
        yield np.bincount(flat, minlength=k * n_pairs).reshape(k, n_pairs).astype(np.float64)


def bootstrap_figures(cells: list[np.ndarray], codes: np.ndarray, n_sources: int, *, ece_bins: int,
                      bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = DEFAULT_SEED,
                      with_ece: list[bool] | None = None, resamples=None) -> list[dict[str, np.ndarray]]:
    """Every cell's figures on every draw (B values each), all cells on the same resamples.

    cells: per cell, its d as seeds × pairs, the pairs in one order for all. A cell's figure on a draw is the mean
    over its seeds; a cell without a probability (with_ece False: the length baseline) gets no ECE. `resamples`
    (draws × pairs count matrices) replaces the random draws: an exhaustive bootstrap, in the tests."""
    codes = np.asarray(codes)
    n = int(codes.size)
    with_ece = with_ece or [True] * len(cells)
    onehot = (codes[:, None] == np.arange(n_sources)[None, :]).astype(np.float64)  # pairs × sources
    prepared = []
    for d, ece_too in zip(cells, with_ece):
        d = np.atleast_2d(np.asarray(d, dtype=np.float64))
        credit = metrics.credit(d).sum(axis=0)  # summed over seeds: exact halves
        # every seed's per-pair bin shares side by side (pairs × seeds·bins): one product per draw chunk
        contributions = np.hstack([metrics.ece_contributions(row, ece_bins) for row in d]) if ece_too else None
        prepared.append((d.shape[0], credit, onehot * credit[:, None], contributions))
    out = [{name: [] for name in FIGURES} for _ in cells]
    for counts in resample_counts(n, bootstrap, seed) if resamples is None else resamples:
        counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
        weights = counts @ onehot  # pairs drawn per source
        for (seeds, credit, credit_by_source, contributions), figures in zip(prepared, out):
            figures[ACCURACY_ALL].append(counts @ credit / (n * seeds))
            with np.errstate(invalid="ignore", divide="ignore"):
                per_source = (counts @ credit_by_source) / (weights * seeds)
            per_source[:, weights.sum(axis=0) == 0] = np.nan  # a source the common pairs lack
            with np.errstate(invalid="ignore"):
                present = ~np.isnan(per_source)
                figures[ACCURACY_AVG].append(np.where(present, per_source, 0).sum(axis=1) / present.sum(axis=1))
            if contributions is not None:
                sums = (counts @ contributions).reshape(counts.shape[0], seeds, ece_bins)
                ece = np.abs(sums).sum(axis=2).mean(axis=1) / (2 * n)
            else:
                ece = np.full(counts.shape[0], np.nan)
            figures[ECE].append(ece)
    return [{name: np.concatenate(parts) if parts else np.array([]) for name, parts in figures.items()}
            for figures in out]


def p_value(differences: np.ndarray) -> float:
    """Two-sided bootstrap p: 2·min(share ≤ 0, share ≥ 0), at least 1/(B+1) (B draws cannot show less), at most 1."""
    differences = np.asarray(differences, dtype=np.float64)
    b = differences.size
    if not b or np.isnan(differences).all():
        return math.nan
    below, above = np.mean(differences <= TIE), np.mean(differences >= -TIE)
    return float(min(1.0, max(2 * min(below, above), 1.0 / (b + 1))))


def percentile_interval(differences: np.ndarray) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of the draws (numpy's linear interpolation)."""
    differences = np.asarray(differences, dtype=np.float64)
    if not differences.size or np.isnan(differences).any():
        return math.nan, math.nan
    low, high = np.percentile(differences, [2.5, 97.5])
    return float(low), float(high)


def pooled_variance(a: np.ndarray, b: np.ndarray) -> float:
    """The seeds' variance within a cell, pooled over two cells: Σ (n_i − 1)·s_i² / Σ (n_i − 1); NaN with no df."""
    parts = [(v.size - 1, v.var(ddof=1)) for v in (np.asarray(a, float), np.asarray(b, float)) if v.size > 1]
    df = sum(k for k, _ in parts)
    return float(sum(k * s2 for k, s2 in parts) / df) if df else math.nan


def cohens_d(difference: float, a: np.ndarray, b: np.ndarray) -> float:
    """The difference in units of the pooled seed-to-seed standard deviation: how many 'seeds' apart."""
    s2 = pooled_variance(a, b)
    return difference / math.sqrt(s2) if s2 == s2 and s2 > 0 else math.nan


@dataclass(frozen=True)
class Power:
    """What 80 % power at α = 0.05 (two-sided) needs for a difference of `target`, and the power now."""

    target: float
    power_now: float  # NaN when the seed spread is unknown (one seed per cell)
    seeds: int | None  # per cell, with the present test pairs; None: no number of seeds is enough (or unknown)
    pairs: int | None  # test pairs, with the present seeds; None: no number of pairs is enough
    plan: tuple[int, int] | None  # (seeds per cell, pairs) that each take half the variance allowed
    seed_spread_known: bool


def power(target: float, bootstrap_variance: float, n_pairs: int, seed_variance: float, seeds_a: int,
          seeds_b: int) -> Power:
    """The normal approximation Var(Δ̂) = σ²_seed·(1/n_a + 1/n_b) + σ²_pair/N.

    σ²_seed is the pooled variance of the per-seed figure (pooled_variance); σ²_pair/N is the bootstrap variance
    of the difference (pair sampling with these models), so σ²_pair = N·that. 80 % power at α = 0.05 needs
    |target| ≥ (z_0.975 + z_0.8)·√Var. Seeds are counted per cell (the same in both); the pair variance of a
    seed mean is taken as fixed, which slightly overstates what more seeds need. With one seed per cell the seed
    spread is unknown: the pairs are counted as if seeds did not vary, and the note says so."""
    target = abs(target)
    known = seed_variance == seed_variance
    s2 = seed_variance if known else 0.0
    if not target or bootstrap_variance != bootstrap_variance:
        return Power(target, math.nan, None, None, None, known)
    allowed = (target / (Z_975 + Z_80)) ** 2  # the largest Var(Δ̂) that still gives 80 %
    seed_term = s2 * (1 / seeds_a + 1 / seeds_b)
    se = math.sqrt(seed_term + bootstrap_variance)
    power_now = 0.5 * (1 + math.erf((target / se - Z_975) / math.sqrt(2))) if known and se > 0 else math.nan
    seeds = None
    if known and allowed > bootstrap_variance:
        seeds = max(2, math.ceil(2 * s2 / (allowed - bootstrap_variance)))
    pairs = max(1, math.ceil(n_pairs * bootstrap_variance / (allowed - seed_term))) if allowed > seed_term else None
    plan = (max(2, math.ceil(2 * s2 / (allowed / 2))), max(1, math.ceil(n_pairs * bootstrap_variance / (allowed / 2)))) \
        if known else None
    return Power(target, power_now, seeds, pairs, plan, known)


@dataclass(frozen=True)
class Difference:
    """Cell a minus cell b on one figure, over the same pairs."""

    figure: str
    a: float  # the cell's mean over seeds
    b: float
    difference: float
    low: float  # the bootstrap's 95 % percentile interval
    high: float
    p: float
    effect_size: float  # Cohen's d over seeds (cohens_d)
    bootstrap_sd: float
    observed_power: Power  # for a difference of the size observed
    one_point_power: Power  # for a difference of one point (0.01)


def difference(figure: str, seeds_a: np.ndarray, seeds_b: np.ndarray, draws_a: np.ndarray, draws_b: np.ndarray,
               n_pairs: int) -> Difference:
    """The comparison of two cells on one figure: per-seed values for the means and the spread, draws for the rest."""
    a, b = float(np.mean(seeds_a)), float(np.mean(seeds_b))
    observed = a - b
    draws = draws_a - draws_b
    if np.isnan(draws).any() or observed != observed:
        nan = math.nan
        none = Power(nan, nan, None, None, None, False)
        return Difference(figure, a, b, observed, nan, nan, nan, nan, nan, none, none)
    low, high = percentile_interval(draws)
    variance = float(draws.var(ddof=1)) if draws.size > 1 else math.nan
    s2 = pooled_variance(seeds_a, seeds_b)
    return Difference(figure, a, b, observed, low, high, p_value(draws), cohens_d(observed, seeds_a, seeds_b),
                      math.sqrt(variance) if variance == variance else math.nan,
                      power(observed, variance, n_pairs, s2, len(seeds_a), len(seeds_b)),
                      power(0.01, variance, n_pairs, s2, len(seeds_a), len(seeds_b)))
