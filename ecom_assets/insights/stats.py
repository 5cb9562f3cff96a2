"""Small statistics helpers shared by the insight assets (vectorised numpy/scipy)."""

import numpy as np
import polars as pl

Z95 = 1.959963984540054


def wilson(successes: pl.Expr, trials: pl.Expr, side: int) -> pl.Expr:
    """Lower (side=-1) or upper (side=+1) bound of the 95 % Wilson score interval of a proportion
    (Wilson 1927). NaN when `trials` is 0."""
    n = trials.cast(pl.Float64)
    p = successes.cast(pl.Float64) / n
    centre = p + Z95**2 / (2 * n)
    spread = Z95 * (p * (1 - p) / n + Z95**2 / (4 * n**2)).sqrt()
    bound = ((centre + side * spread) / (1 + Z95**2 / n)).clip(0.0, 1.0)
    # the bounds hold the estimate up to float rounding (4e-19 above a rate of 0 otherwise)
    return pl.min_horizontal(bound, p) if side < 0 else pl.max_horizontal(bound, p)


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """BH-adjusted q-values (false discovery rate)."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(q)
    out[order] = np.clip(q, 0, 1)
    return out


def two_proportion_p(x1, n1, x2, n2) -> np.ndarray:
    """Two-sided p-value of a two-proportion z-test (arrays allowed)."""
    from scipy.stats import norm

    x1, n1, x2, n2 = (np.asarray(v, dtype=float) for v in (x1, n1, x2, n2))
    with np.errstate(divide="ignore", invalid="ignore"):  # empty groups give no evidence (p = 1)
        pooled = (x1 + x2) / (n1 + n2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        z = (x1 / n1 - x2 / n2) / se
    return np.where(np.isfinite(z), 2 * norm.sf(np.abs(z)), 1.0)


def curveball_step(columns: np.ndarray, rng: np.random.Generator) -> None:
    """One global curveball step, in place, on a dense boolean matrix stored columns × rows
    (the transpose of customers × categories: every step works on whole category rows, contiguous).

    Every customer is paired with another (Carstens et al. 2016, "global curveball"); each pair pools
    the categories that only one of the two holds and deals them back at random, each customer
    receiving as many as it gave. Every customer's and every category's total stays exactly the same
    (Strona et al. 2014, "A fast and unbiased procedure to randomize ecological binary matrices with
    fixed row and column totals", Nature Communications 5:4114). The deal is selection sampling
    (Knuth's Algorithm S) run over the categories for all pairs at once: a uniform random subset, no sort.
    """
    n = columns.shape[1]
    half = n // 2
    if half == 0:
        return
    # pairs without gathering customers: the matrix rotated by a random shift, customer k of the first
    # half with customer k + r of the second (rotations are memory copies; a random pairing was 3x slower)
    shift, r = int(rng.integers(n)), int(rng.integers(half))
    work = np.roll(columns, -shift, axis=1)
    a, b = work[:, :half], np.roll(work[:, half:2 * half], -r, axis=1)
    pooled = a ^ b
    need = (a & pooled).sum(axis=0, dtype=np.int32).astype(np.float32)  # cells customer a gets back
    left = pooled.sum(axis=0, dtype=np.int32).astype(np.float32)  # pooled cells not dealt yet
    draws = rng.random(pooled.shape, dtype=np.float32)
    to_a = np.empty_like(pooled)
    for j in range(pooled.shape[0]):
        np.logical_and(pooled[j], draws[j] * left < need, out=to_a[j])
        need -= to_a[j]
        left -= pooled[j]
    a &= ~pooled
    a |= to_a
    b &= ~pooled
    b |= pooled & ~to_a
    work[:, half:2 * half] = np.roll(b, r, axis=1)
    columns[:] = np.roll(work, shift, axis=1)


def cooccurrence_null(matrix: np.ndarray, samples: int = 500, burn_in: int = 10, seed: int = 0
                      ) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard deviation), each columns × columns, of every column pair's co-occurrence count
    over `samples` curveball randomisations of the boolean `matrix` (rows × columns): the null that
    keeps every row's number of distinct columns and every column's number of rows exactly.
    `burn_in` global steps first, then one sample per global step. Deterministic given `seed`."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    work = np.ascontiguousarray(matrix.T, dtype=bool)  # a copy: the caller's matrix is left alone
    for _ in range(burn_in):
        curveball_step(work, rng)
    k = work.shape[0]
    total, squares = np.zeros((k, k)), np.zeros((k, k))
    # one BLAS thread: the products are small, and spinning BLAS threads on a busy 2-core machine made
    # each 10x slower (112 ms instead of 3 ms for 4,627 × 122)
    with threadpool_limits(1):
        for _ in range(samples):
            curveball_step(work, rng)
            counts = cooccurrence(work.T)
            total += counts
            squares += counts**2
    mean = total / samples
    return mean, np.sqrt(np.maximum(squares / samples - mean**2, 0.0) * samples / max(samples - 1, 1))


def cooccurrence(matrix: np.ndarray) -> np.ndarray:
    """Columns × columns counts of rows holding both columns of a boolean rows × columns matrix."""
    dense = np.ascontiguousarray(matrix.T, dtype=np.float32)
    return (dense @ dense.T).astype(np.float64)  # float32 BLAS: exact for counts < 2**24
