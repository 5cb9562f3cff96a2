"""Small statistics helpers shared by the insight assets (vectorised numpy/scipy)."""

import numpy as np
import polars as pl

Z95 = 1.959963984540054


def wilson(successes: pl.Expr, trials: pl.Expr, side: int) -> pl.Expr:
    """Lower (side=-1) or upper (side=+1) bound of the 95 % Wilson interval of a proportion."""
    n = trials.cast(pl.Float64)
    p = successes.cast(pl.Float64) / n
    centre = p + Z95**2 / (2 * n)
    spread = Z95 * (p * (1 - p) / n + Z95**2 / (4 * n**2)).sqrt()
    return (centre + side * spread) / (1 + Z95**2 / n)


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
