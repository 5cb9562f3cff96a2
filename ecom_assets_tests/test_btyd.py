"""BG/NBD closed form (features/btyd.py) against Fader, Hardie & Lee (2005)'s published CDNOW figures."""

import numpy as np
import polars as pl
import pytest

from ecom_assets.features import btyd

CDNOW = btyd.BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)  # FHL 2005, table/section 5 (weeks)


def simulate(params: btyd.BgNbdParams, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD customers as the model tells it: Poisson purchases at rate lambda ~ Gamma(r, alpha), a
    coin with p ~ Beta(a, b) after each purchase decides dropout; observed 27-39 weeks, as CDNOW's
    first-quarter cohort."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(params.r, 1 / params.alpha, n)
    p = rng.beta(params.a, params.b, n)
    T = rng.uniform(27, 39, n)
    x, t_x = np.zeros(n), np.zeros(n)
    for i in range(n):
        t = rng.exponential(1 / lam[i])
        while t <= T[i]:
            x[i] += 1
            t_x[i] = t
            if rng.random() < p[i]:
                break
            t += rng.exponential(1 / lam[i])
    return x, t_x, T


def test_conditional_expectation_reproduces_the_papers_example() -> None:
    # FHL 2005 section 5: x=2, t_x=30.43, T=38.86 weeks -> 1.226 purchases expected in the next 39 weeks
    value = btyd.expected_purchases(CDNOW, np.array([2.0]), np.array([30.43]), np.array([38.86]), t=39.0)
    assert value[0] == pytest.approx(1.226, abs=5e-4)


def test_p_alive_and_no_purchase_are_probabilities_with_the_right_order() -> None:
    x = np.array([0.0, 2.0, 2.0, 10.0])
    t_x = np.array([0.0, 30.0, 5.0, 5.0])
    T = np.full(4, 39.0)
    alive = btyd.p_alive(CDNOW, x, t_x, T)
    assert alive[0] == 1.0  # no repeat purchase: the model has not seen a chance to drop out
    assert alive[1] > alive[2] > alive[3]  # the longer quiet, the more likely gone — more so for a frequent buyer
    quiet = btyd.p_no_purchase(CDNOW, x, t_x, T)
    assert ((quiet > 0) & (quiet < 1)).all() and quiet[1] < quiet[2]


def test_maximum_likelihood_recovers_the_cdnow_parameters() -> None:
    x, t_x, T = simulate(CDNOW, 20_000, seed=3)
    fitted = btyd.fit(x, t_x, T)
    assert fitted.r == pytest.approx(CDNOW.r, rel=0.1) and fitted.alpha == pytest.approx(CDNOW.alpha, rel=0.15)
    assert fitted.a == pytest.approx(CDNOW.a, rel=0.3) and fitted.b == pytest.approx(CDNOW.b, rel=0.3)
    # it is the maximum: no worse than the true parameters on the same data
    assert btyd.log_likelihood(fitted, x, t_x, T).sum() >= btyd.log_likelihood(CDNOW, x, t_x, T).sum()


def test_features_get_btyd_columns_and_never_buyers_stay_null() -> None:
    x, t_x, T = simulate(CDNOW, 2_000, seed=4)
    frame = pl.DataFrame({
        "customer_id": [f"C{i}" for i in range(x.size)] + ["never"],
        "repeat_purchases": [*x.tolist(), None],
        "days_since_first_purchase": [*(T * 7).tolist(), None],
        "days_since_last_purchase": [*((T - t_x) * 7).tolist(), None],
    })
    out, info = btyd.add_btyd_features(frame)
    assert info["customers_fitted"] == x.size and info["fit_seconds"] >= 0
    assert out.filter(pl.col("customer_id") == "never").select(btyd.BTYD_COLUMNS).null_count().row(0) == (1, 1, 1)
    assert out["p_alive"].drop_nulls().is_between(0, 1).all() and out["expected_purchases_90d"].min() >= 0


def test_too_few_buyers_gives_null_columns_with_a_note() -> None:
    frame = pl.DataFrame({"customer_id": ["A", "B"], "repeat_purchases": [0.0, 1.0],
                          "days_since_first_purchase": [10.0, 20.0], "days_since_last_purchase": [10.0, 3.0]})
    out, info = btyd.add_btyd_features(frame)
    assert out["p_alive"].null_count() == 2 and "not fitted" in info["note"]
