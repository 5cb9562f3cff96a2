"""BG/NBD ("buy till you die") per customer: P(alive), expected purchases and P(no purchase) in the horizon.

Method: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An Alternative to the
Pareto/NBD Model", Marketing Science 24(2) — the closed-form log-likelihood (their eq. 6), P(alive)
(eq. 13) and the conditional expectation E[Y(t) | x, t_x, T] (eq. 10), fitted by maximum likelihood
with scipy.optimize on the log parameters.

Why not pymc-marketing's `clv.BetaGeoModel` (the maintained library for this): measured here on
the 23,570-customer music log, its MAP fit + prediction takes 44 s, mostly PyTensor graph
compilation, plus 8 s of import (`../shared/LIBRARY_NOTES.md`); this project fits one BG/NBD per
labelled window and per scoring snapshot (up to ~12 per build, dozens of builds in the test suite,
CI budget 20 min), and its install brings pymc, pytensor, numba and arviz. The closed form below
fits the same model in well under a second on the sampled customers and scores 500k customers
vectorised; `test_btyd.py` checks it against the paper's published CDNOW figures.

Inputs per customer who bought at least once, as of a cutoff (time unit: weeks, as in the paper):
x = repeat purchases (distinct purchase days - 1), t_x = weeks from the first to the last
purchase, T = weeks from the first purchase to the cutoff.

Beside it, the Gamma-Gamma spend model (Fader & Hardie 2013) for the value of those purchases:
`fit_gamma_gamma` and `spend_per_order` (used by the churn risk list's value at risk).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

HORIZON_WEEKS = 90 / 7
MAX_FIT_CUSTOMERS = 10_000  # a stable hash-sample beyond this: 4 parameters need no more, fits stay well < 1 s
FIT_SEED = 20240601
MIN_FIT_CUSTOMERS = 30
MIN_REPEATERS = 5  # without repeat buyers the dropout process cannot be estimated
BTYD_COLUMNS = ["p_alive", "expected_purchases_90d", "bgnbd_churn_90d"]
# the rows BG/NBD describes: customers with a first purchase (x and T known)
BUYERS = pl.col("repeat_purchases").is_not_null() & pl.col("days_since_first_purchase").is_not_null()


@dataclass
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float


def log_likelihood(params: BgNbdParams, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer log-likelihood (FHL 2005 eq. 6). Arrays of equal shape, t_x <= T, in weeks."""
    from scipy.special import gammaln

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = gammaln(a + b) + gammaln(b + x) - gammaln(b) - gammaln(a + b + x)
    a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    a4 = np.where(repeat, np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x), -np.inf)
    return a1 + a2 + np.logaddexp(a3, a4)


def _loss_and_gradient(theta: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood and its gradient in (log r, log alpha, log a, log b): the derivatives
    of FHL eq. 6 term by term (digamma for the gamma functions; w = the weight of the "dropped out
    after the last purchase" branch)."""
    from scipy.special import digamma

    r, alpha, a, b = np.exp(theta)
    params = BgNbdParams(r, alpha, a, b)
    ll = log_likelihood(params, x, t_x, T)
    repeat = x > 0
    a3 = -(r + x) * np.log(alpha + T)
    a4 = np.where(repeat, np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x), -np.inf)
    w = np.exp(a4 - np.logaddexp(a3, a4))
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - (1 - w) * np.log(alpha + T) - w * np.log(alpha + t_x)
    d_alpha = r / alpha - (1 - w) * (r + x) / (alpha + T) - w * (r + x) / (alpha + t_x)
    d_a = digamma(a + b) - digamma(a + b + x) + w / a
    d_b = (digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x)
           - w / np.where(repeat, b + x - 1, 1.0))
    grad = -np.array([r * d_r.mean(), alpha * d_alpha.mean(), a * d_a.mean(), b * d_b.mean()])
    value = -float(ll.mean())
    if not np.isfinite(value) or not np.isfinite(grad).all():
        return 1e10, np.zeros(4)
    return value, grad


def fit(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BgNbdParams:
    """Maximum-likelihood BG/NBD parameters (L-BFGS-B on log r, log alpha, log a, log b, analytic gradient)."""
    from scipy.optimize import minimize

    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    scale = max(float(T.mean()), 1e-3)  # alpha is in time units: start it at the mean age
    start = np.log([1.0, scale, 1.0, 1.0])
    bounds = [(-9.0, 9.0), (np.log(scale) - 12.0, np.log(scale) + 12.0), (-9.0, 9.0), (-9.0, 9.0)]
    # ftol 1e-9 (relative): a flat likelihood ridge (a, b -> infinity together) stops instead of wandering
    result = minimize(_loss_and_gradient, start, args=(x, t_x, T), jac=True, method="L-BFGS-B", bounds=bounds,
                      options={"maxiter": 300, "ftol": 1e-9})
    return BgNbdParams(*np.exp(result.x).tolist())


def _odds_dead(params: BgNbdParams, x, t_x, T) -> np.ndarray:
    """a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x) for repeat buyers, 0 otherwise (FHL eq. 13),
    in logs first so that long-gone heavy buyers do not overflow."""
    repeat = x > 0
    log_odds = (np.log(params.a) - np.log(np.where(repeat, params.b + x - 1, 1.0))
                + (params.r + x) * (np.log(params.alpha + T) - np.log(params.alpha + t_x)))
    return np.where(repeat, np.exp(np.minimum(log_odds, 700.0)), 0.0)


def p_alive(params: BgNbdParams, x, t_x, T) -> np.ndarray:
    """P(still active at T | x, t_x, T) (FHL eq. 13)."""
    return 1.0 / (1.0 + _odds_dead(params, x, t_x, T))


def p_no_purchase(params: BgNbdParams, x, t_x, T, t: float = HORIZON_WEEKS) -> np.ndarray:
    """P(no purchase in (T, T + t]): dead, or alive with no purchase. Alive customers buy as a Poisson
    process whose rate has the posterior Gamma(r + x, alpha + T), so P(0 in t | alive) =
    ((alpha + T) / (alpha + T + t))^(r + x)."""
    quiet = np.exp((params.r + x) * (np.log(params.alpha + T) - np.log(params.alpha + T + t)))
    return 1.0 - p_alive(params, x, t_x, T) * (1.0 - quiet)


def expected_purchases(params: BgNbdParams, x, t_x, T, t: float = HORIZON_WEEKS) -> np.ndarray:
    """E[Y(t) | x, t_x, T]: expected purchases in (T, T + t] (FHL eq. 10)."""
    from scipy.special import hyp2f1

    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    if abs(a - 1.0) < 1e-6:  # the closed form divides by a - 1; the limit is continuous
        a = 1.0 + 1e-6
    z = t / (alpha + T + t)
    head = (a + b + x - 1) / (a - 1)
    tail = 1.0 - np.exp((r + x) * np.log((alpha + T) / (alpha + T + t))) * hyp2f1(r + x, b + x, a + b + x - 1, z)
    return np.maximum(head * tail / (1.0 + _odds_dead(params, x, t_x, T)), 0.0)


def summary_columns(features: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) in weeks from the feature columns `repeat_purchases`, `days_since_first_purchase`,
    `days_since_last_purchase` (rows of customers who bought at least once)."""
    x = features["repeat_purchases"].to_numpy().astype(np.float64)
    T = features["days_since_first_purchase"].to_numpy().astype(np.float64) / 7.0
    t_x = T - features["days_since_last_purchase"].to_numpy().astype(np.float64) / 7.0
    return x, np.clip(t_x, 0.0, None), T


def fit_to(features: pl.DataFrame) -> tuple[BgNbdParams | None, dict]:
    """(the BG/NBD fitted on the buyers of `features`, what the fit did {params, customers, seconds, note});
    None without enough buyers and repeat buyers. The same frame always gives the same parameters (a stable
    hash-sample of at most 10,000 buyers, in id order), so a later step can refit exactly the fit behind the
    features' BTYD columns (the churn baseline's per-customer drivers do)."""
    pool = features.filter(BUYERS).select("customer_id", "repeat_purchases", "days_since_first_purchase",
                                          "days_since_last_purchase")
    info: dict = {"model": "BG/NBD (Fader, Hardie & Lee 2005), maximum likelihood", "customers_fitted": 0}
    if pool.height < MIN_FIT_CUSTOMERS or int((pool["repeat_purchases"] > 0).sum()) < MIN_REPEATERS:
        info["note"] = (f"not fitted: {pool.height} buyers, {int((pool['repeat_purchases'] > 0).sum()) if pool.height else 0} "
                        f"with a repeat purchase (needs {MIN_FIT_CUSTOMERS} and {MIN_REPEATERS})")
        return None, info
    sample = pool
    if pool.height > MAX_FIT_CUSTOMERS:
        sample = pool.with_columns(_h=pl.col("customer_id").hash(seed=FIT_SEED)).sort("_h").head(MAX_FIT_CUSTOMERS)
    started = time.perf_counter()
    params = fit(*summary_columns(sample.sort("customer_id")))
    info.update(params=asdict(params), customers_fitted=sample.height, fit_seconds=round(time.perf_counter() - started, 3))
    return params, info


def add_btyd_features(features: pl.DataFrame) -> tuple[pl.DataFrame, dict]:
    """`features` with p_alive, expected_purchases_90d and bgnbd_churn_90d (null for never-buyers, or for
    everyone when the model cannot be fitted), and what the fit did {params, customers, seconds, note}.

    The BG/NBD is fitted on the buyers as of the features' cutoff (`fit_to`): it uses no label, so fitting
    it at every training cutoff leaks nothing."""
    params, info = fit_to(features)
    if params is None:
        return features.with_columns(pl.lit(None, dtype=pl.Float64).alias(c) for c in BTYD_COLUMNS), info
    x, t_x, T = summary_columns(features.with_columns(
        pl.col("repeat_purchases").fill_null(0.0), pl.col("days_since_first_purchase").fill_null(0.0),
        pl.col("days_since_last_purchase").fill_null(0.0)))
    mask = features.select(BUYERS).to_series().to_numpy()
    with np.errstate(all="ignore"):
        values = {"p_alive": p_alive(params, x, t_x, T), "expected_purchases_90d": expected_purchases(params, x, t_x, T),
                  "bgnbd_churn_90d": p_no_purchase(params, x, t_x, T)}
    return features.with_columns(
        pl.Series(name, np.where(mask & np.isfinite(v), v, np.nan), dtype=pl.Float64).fill_nan(None)
        for name, v in values.items()), info


# Gamma-Gamma spend model: the BTYD companion of BG/NBD for the value of the expected orders
GG_SAMPLE = 20_000  # customers the Gamma-Gamma parameters are fitted on (3 parameters: plenty)
GG_MIN_CUSTOMERS = 30
GG_SEED = 11


def fit_gamma_gamma(orders: np.ndarray, aov: np.ndarray) -> dict | None:
    """Gamma-Gamma spend model (p, q, gamma) by maximum likelihood from each customer's number of
    orders x and mean order value m (Fader & Hardie 2013, eq. 3); customers with m <= 0 (free
    orders only) carry no spend information and are left out. None if fewer than 30 remain.
    Population mean spend per order = p * gamma / (q - 1) (q > 1 is enforced so it exists)."""
    from scipy.optimize import minimize
    from scipy.special import digamma, gammaln

    keep = (orders >= 1) & (aov > 0) & np.isfinite(aov)
    x, m = orders[keep].astype(float), aov[keep].astype(float)
    if x.size < GG_MIN_CUSTOMERS:
        return None
    if x.size > GG_SAMPLE:
        pick = np.random.default_rng(GG_SEED).choice(x.size, GG_SAMPLE, replace=False)
        x, m = x[pick], m[pick]
    scale = float(np.median(m))  # fitted in units of the median order: the optimiser sees O(1) numbers
    m = m / scale

    log_m, log_x = np.log(m), np.log(x)

    def negative_log_likelihood(theta: np.ndarray) -> tuple[float, np.ndarray]:
        # parameters on a log scale (q - 1 too) so the search is unconstrained; analytic gradient
        p, q, g = np.exp(theta[0]), 1.0 + np.exp(theta[1]), np.exp(theta[2])
        px, log_gmx = p * x, np.log(g + m * x)
        ll = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(g) + (px - 1) * log_m + px * log_x
              - (px + q) * log_gmx)
        psi_pxq = digamma(px + q)
        d_p = (x * (psi_pxq - digamma(px) + log_m + log_x - log_gmx)).sum() * p
        d_q = (psi_pxq - digamma(q) + np.log(g) - log_gmx).sum() * (q - 1)
        d_g = (q / g - (px + q) / (g + m * x)).sum() * g
        return -float(ll.sum()), -np.array([d_p, d_q, d_g])

    # bounded in log space: without spend heterogeneity q and gamma grow without limit (the MLE is at infinity)
    # and exp() of an unbounded step overflows; at e^20 the shrinkage weight (q-1)/(px+q-1) is 1 to 1e-7
    result = minimize(negative_log_likelihood, np.log([1.0, 2.0, 1.0]), jac=True, method="L-BFGS-B",
                      bounds=[(-20.0, 20.0)] * 3)
    p, q, g = float(np.exp(result.x[0])), float(1.0 + np.exp(result.x[1])), float(np.exp(result.x[2]) * scale)
    return {"p": p, "q": q, "gamma": g, "customers": int(x.size), "converged": bool(result.success),
            "population_mean": p * g / (q - 1)}


def spend_per_order(params: dict | None, orders: pl.Expr, aov: pl.Expr) -> pl.Expr:
    """E[spend per order | x orders, mean m] = (q-1)/(px+q-1) * p*gamma/(q-1) + px/(px+q-1) * m:
    a weighted mean of the population's and the customer's own AOV (Fader & Hardie 2013, eq. 5).
    Without a fit: the customer's own AOV."""
    if params is None:
        return aov
    p, q = params["p"], params["q"]
    px = p * orders
    return (params["population_mean"] * (q - 1) + px * aov) / (px + q - 1)
