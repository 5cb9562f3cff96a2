"""Holdout metrics (AUC, reliability per decile, ECE, risk tiers), bootstrap CI of an AUC difference (numpy)."""

import numpy as np

N_BOOTSTRAP = 500
BOOTSTRAP_SEED = 20240601


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC with ties counted half (Mann-Whitney)."""
    return float(weighted_auc(y, score, np.ones((1, y.size)))[0])


def weighted_auc(y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUC under each row of `weights` (B x n): one sort serves every bootstrap resample."""
    order = np.argsort(score, kind="stable")
    s, yy, w = score[order], y[order].astype(bool), weights[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    group = np.cumsum(np.r_[True, s[1:] != s[:-1]]) - 1
    neg = np.where(yy, 0.0, w)
    neg_group = np.add.reduceat(neg, starts, axis=1)
    below = (np.cumsum(neg_group, axis=1) - neg_group)[:, group] + 0.5 * neg_group[:, group]
    pos_w = np.where(yy, w, 0.0)
    denom = pos_w.sum(axis=1) * neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos_w * below).sum(axis=1) / denom


def bootstrap_auc_difference(y: np.ndarray, score_a: np.ndarray, score_b: np.ndarray,
                             n_boot: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> dict:
    """AUC(a) - AUC(b) on the same rows, with a 95 % Poisson-bootstrap percentile interval.

    `y`: 0/1 labels, shape (n,); `score_a`, `score_b`: scores of the same n rows (higher = more likely 1).
    Returns {auc_diff, ci_low, ci_high, n_bootstrap}. Raises ValueError when `y` holds one class only: no
    AUC is defined (every caller with possibly one-class holdouts checks first and says "no skill")."""
    if np.unique(y).size < 2:
        raise ValueError(f"bootstrap_auc_difference: the {y.size} labels hold one class only, so no AUC is defined")
    rng = np.random.default_rng(seed)
    diffs = []
    for chunk in np.array_split(np.arange(n_boot), max(1, n_boot * y.size // 5_000_000)):
        w = rng.poisson(1.0, size=(chunk.size, y.size)).astype(np.float64)
        diffs.append(weighted_auc(y, score_a, w) - weighted_auc(y, score_b, w))
    diff = np.concatenate(diffs)
    diff = diff[np.isfinite(diff)]
    return {
        "auc_diff": auc(y, score_a) - auc(y, score_b),
        "ci_low": float(np.percentile(diff, 2.5)),
        "ci_high": float(np.percentile(diff, 97.5)),
        "n_bootstrap": int(diff.size),
    }


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def pr_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Average precision."""
    order = np.argsort(-score, kind="stable")
    hits = y[order].astype(float)
    precision = np.cumsum(hits) / np.arange(1, hits.size + 1)
    return float((precision * hits).sum() / max(hits.sum(), 1))


def top_decile(y: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(precision in the top 10 % by score, lift over the base rate)."""
    k = max(1, int(np.ceil(0.1 * y.size)))
    precision = float(y[np.argsort(-score, kind="stable")[:k]].mean())
    return precision, precision / max(float(y.mean()), 1e-9)


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        if mask.any():
            rows.append({"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "n": int(mask.sum()),
                         "mean_predicted": float(p[mask].mean()), "observed_rate": float(y[mask].mean())})
    return rows


def classification_metrics(y: np.ndarray, p: np.ndarray, suffix: str = "") -> dict:
    precision, lift = top_decile(y, p)
    return {
        f"auc{suffix}": auc(y, p),
        f"pr_auc{suffix}": pr_auc(y, p),
        f"brier{suffix}": brier(y, p),
        f"log_loss{suffix}": log_loss(y, p),
        f"top_decile_precision{suffix}": precision,
        f"top_decile_lift{suffix}": lift,
    }


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    """Reliability per decile of the predicted probability: rows, mean predicted, observed rate. A decile
    is taken by rank, and equal scores stay together in the decile where their first row falls (so a
    score shared by many rows makes fewer, larger bins, never a bin mixing it with a distant score)."""
    values, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    first_rank = (np.cumsum(counts) - counts)[inverse]  # rank of the first row holding the same score
    which = first_rank * bins // max(p.size, 1)
    rows = []
    for b in np.unique(which):
        mask = which == b
        rows.append({"decile": int(b) + 1, "n": int(mask.sum()), "mean_predicted": float(p[mask].mean()),
                     "observed_rate": float(y[mask].mean())})
    return rows


def expected_calibration_error(table: list[dict]) -> float:
    """ECE: |mean predicted - observed| per bin, weighted by the bin's rows (Naeini et al. 2015)."""
    n = sum(r["n"] for r in table)
    return float(sum(r["n"] * abs(r["mean_predicted"] - r["observed_rate"]) for r in table) / max(n, 1))


def tier_table(y: np.ndarray, tiers: np.ndarray, order: list[str]) -> tuple[list[dict], bool]:
    """(observed churn per risk tier in `order` (highest first), whether it falls strictly from tier to
    tier among the non-empty tiers)."""
    rows = [{"tier": t, "n": int((tiers == t).sum()), "observed_rate": float(y[tiers == t].mean())}
            for t in order if (tiers == t).any()]
    rates = [r["observed_rate"] for r in rows]
    return rows, all(a > b for a, b in zip(rates, rates[1:]))
