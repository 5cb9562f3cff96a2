"""The classic baselines, the gate against the best of them, monotone calibration, stacked windows
without label leakage, and categorical/empty columns as purchase logs and shop exports bring them.
Planted frames shaped like `churn_training_set` (a few thousand customers, four or five cutoffs)."""

from datetime import date, timedelta

import numpy as np
import pytest
import polars as pl

from ecom_assets.churn import assets as churn_assets
from ecom_assets.churn import evaluate
from ecom_assets.churn import model as churn

HOLDOUT = date(2024, 10, 1)


def planted(n: int = 2500, seed: int = 0, offsets=(0, 30, 90, 120, 150), bgnbd: bool = True) -> pl.DataFrame:
    """Windows at HOLDOUT - offset days. Each row's true churn probability is sigmoid(z); the "BG/NBD"
    column carries it exactly (the classic is the oracle here), days since the last purchase only
    noisily, and `noise` nothing at all."""
    rng = np.random.default_rng(seed)
    frames = []
    for window, offset in enumerate(offsets):
        z = rng.normal(0.3, 1.6, n)
        p = 1 / (1 + np.exp(-z))
        recency = np.clip(np.round(40 * np.exp(0.6 * z + rng.normal(0, 0.8, n))), 0, 700)
        frame = pl.DataFrame({
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "cutoff": [HOLDOUT - timedelta(days=offset)] * n, "window": window, "is_holdout": offset == 0,
            "cold_start": False, "churned": rng.random(n) < p,
            "days_since_last_purchase": recency, "n_purchases": rng.integers(1, 9, n).astype(float),
            "noise": rng.normal(size=n),
        })
        if bgnbd:
            frame = frame.with_columns(bgnbd_churn_90d=pl.Series(p))
        frames.append(frame)
    return pl.concat(frames)


def test_gated_training_never_sees_labels_from_the_holdouts_feature_period() -> None:
    train, holdout, labelled = churn_assets.split_windows(planted(n=200))
    assert set(holdout["cutoff"]) == {HOLDOUT}
    # HOLDOUT-30's label horizon reaches HOLDOUT+60: it may only be used by the refit
    assert set(train["cutoff"]) == {HOLDOUT - timedelta(days=d) for d in (90, 120, 150)}
    assert HOLDOUT - timedelta(days=30) in set(labelled["cutoff"])


def test_the_fallback_ranks_exactly_like_its_classic_and_stays_calibrated() -> None:
    # a purchase log where only recency carries signal and no BG/NBD could be fitted
    train, holdout, _ = churn_assets.split_windows(planted(bgnbd=False, seed=1))
    baseline = churn.fit_baseline(train, holdout, train.head(0))
    assert baseline["classic"] == "recency"
    y = holdout["churned"].to_numpy().astype(float)
    recency = holdout["days_since_last_purchase"].to_numpy()
    p = churn.baseline_probability(holdout, baseline, which="calibration")
    assert abs(evaluate.auc(y, p) - evaluate.auc(y, recency)) < 1e-12  # not a handful of bands
    assert np.unique(p).size == np.unique(recency).size  # every distinct recency keeps its own probability
    report = churn.calibration_report(y, p)  # calibrated on older windows, judged on the holdout
    assert report["ece"] < 0.05 and report["tiers_monotone"]


def test_the_gate_compares_with_the_best_classic_not_only_recency() -> None:
    train, holdout, _ = churn_assets.split_windows(planted(seed=2))
    baseline = churn.fit_baseline(train, holdout, train.head(0))
    assert baseline["classic"] == "bgnbd"
    trained = churn.train_model(train)
    evaluation, p = churn.evaluate_holdout(trained, holdout, baseline)
    m = evaluation.metrics
    assert m["best_classic"] == "bgnbd" and m["auc_best_classic"] > m["auc_classic_recency"] + 0.02
    assert m["auc_out_of_time"] > m["auc_classic_recency"] + 0.02  # it beats recency by far ...
    assert evaluation.status == "no_skill", evaluation.status_reason  # ... but not the classic it re-learns
    assert "bgnbd" in evaluation.status_reason


def test_centered_isotonic_is_strictly_increasing_and_calibrated() -> None:
    rng = np.random.default_rng(3)
    score = rng.random(20_000)
    y = (rng.random(score.size) < score**2).astype(float)  # a raw score that is monotone but not calibrated
    calibration = churn.fit_calibration(score, y, "logit")
    grid = np.linspace(0.001, 0.999, 2001)
    p = churn.apply_calibration(grid, calibration)
    assert (np.diff(p) > 0).all() and (p > 0).all() and (p < 1).all()
    fresh = rng.random(20_000)
    calibrated = churn.apply_calibration(fresh, calibration)
    assert np.abs(calibrated - fresh**2).mean() < 0.02


def test_tiers_that_do_not_fall_from_high_to_low_are_reported() -> None:
    y = np.array([0.6] * 10 + [0.7] * 10 + [0.1] * 10) > np.tile(np.linspace(0.05, 0.95, 10), 3)
    p = np.array([0.9] * 10 + [0.6] * 10 + [0.2] * 10)  # "high" churns less than "medium" here
    report = churn.calibration_report(y.astype(float), p)
    assert [t["tier"] for t in report["tiers"]] == ["high", "medium", "low"]
    assert not report["tiers_monotone"]
    assert len(report["reliability"]) == 3 and report["ece"] > 0  # three distinct scores: three bins


def test_an_observed_other_category_is_data_and_empty_columns_are_left_out() -> None:
    frame = planted(n=1500, seed=4, offsets=(0, 90, 120))
    rng = np.random.default_rng(4)
    gender = rng.choice(["other", "Other", "f", "m"], frame.height)
    churned = np.where(gender == "other", True, frame["churned"].to_numpy())  # planted: "other" always churns
    frame = frame.with_columns(gender=pl.Series(gender), churned=pl.Series(churned),
                               browsing_mean_sec=pl.lit(None, dtype=pl.Float64),  # a purchase log: no browsing
                               age=pl.lit(41.0))  # one value for everyone
    train, holdout, _ = churn_assets.split_windows(frame)
    trained = churn.train_model(train)
    assert trained.dropped_features == {"browsing_mean_sec": "all null", "age": "constant"}
    assert trained.categories["gender"] == ["Other", "f", "m", "other"]  # no pooled string among the levels
    scoring = holdout.with_columns(gender=pl.Series(np.where(np.arange(holdout.height) % 7 == 0, "unseen",
                                                              holdout["gender"].to_numpy())))
    p, _, drivers = churn.predict(trained, scoring.drop("browsing_mean_sec"), with_drivers=True)
    by_gender = pl.DataFrame({"gender": scoring["gender"], "p": p}).group_by("gender").agg(pl.col("p").mean())
    rates = dict(by_gender.iter_rows())
    assert rates["other"] > rates["Other"] + 0.1 and rates["other"] > rates["m"] + 0.1
    codes = churn.design_matrix(scoring.head(50), ["gender"], trained.categories).get_data().toarray()
    gender_head = scoring["gender"].head(50).to_list()
    assert all(code == (4 if g == "unseen" else trained.categories["gender"].index(g))
               for code, g in zip(codes[:, 0], gender_head))
    assert drivers.list.len().min() == 3


def test_calibration_stays_within_what_its_data_supports_beyond_the_outer_knots() -> None:
    # recency classic on a purchase log: nobody in the calibration window bought on the cutoff day (the
    # youngest recency there is 6 days) and the youngest block has no churner; a customer who bought today
    # scores 0 days, past the outer knot. The old end-slope extrapolation served ~2e-5 for them.
    rng = np.random.default_rng(5)
    days = rng.integers(6, 400, 3000).astype(float)
    y = (rng.random(days.size) < np.clip(days / 450, 0, 1) ** 2).astype(float)
    y[days < 15] = 0.0  # the youngest block: no churner among ~80 customers
    calibration = churn.fit_calibration(days, y, "log1p")
    p_today, p_knot = churn.apply_calibration(np.array([0.0, float(days.min())]), calibration)
    assert p_knot > 1e-3  # the youngest block's rate is floored (Jeffreys), not PAVA's 1e-4
    assert p_knot * np.exp(-calibration["tail"]) * 0.999 <= p_today < p_knot  # bounded tail, still strictly ordered
    grid = np.linspace(0, 5000, 5001)  # far beyond both ends: bounded, strictly increasing
    p = churn.apply_calibration(grid, calibration)
    assert (np.diff(p) > 0).all() and p.max() < 1 and p.min() > 1e-3


def test_baseline_drivers_follow_each_customers_direction() -> None:
    baseline = {"overall_rate": 0.4}
    drivers = churn.baseline_drivers(np.array([0.05, 0.4, 0.8]), baseline, "days_since_last_purchase")
    assert drivers == [["days_since_last_purchase ↓"], ["days_since_last_purchase ↓"], ["days_since_last_purchase ↑"]]
    from ecom_assets.churn.risk_list import _plain
    assert _plain(drivers[0][0]) == "days since the last purchase (lowers risk)"


def test_an_unscored_customer_gets_no_driver_direction() -> None:
    # no history to estimate even the baseline: the probabilities are NaN, so no driver can say "lowers risk"
    drivers = churn.baseline_drivers(np.array([np.nan, np.nan]), None, "days_since_last_purchase")
    assert drivers == [[], []]


def test_a_best_classic_without_skill_serves_the_base_rate_with_no_tier_and_says_so(tmp_path) -> None:
    """Quirk: a shop whose buyers' futures have nothing to do with their past (here: churn drawn at 60 %
    independently of recency and the BG/NBD, as a tryout's holdout showed with the best classic at AUC 0.486).
    No model passes the gate, and the calibrated classic used to serve as if it ranked: three risk tiers and
    "days since the last purchase (raises risk)" drivers out of noise. Expected: the card and the serving line
    say "no skill", every buyer gets the labelled customers' base rate, and the risk tier is withheld."""
    from ecom_assets.churn import registry
    from ecom_assets.settings import EcomSettings

    rng = np.random.default_rng(5)
    training = planted(n=1500, seed=5)
    training = training.with_columns(churned=pl.Series(rng.random(training.height) < 0.6),
                                     as_of=pl.col("cutoff"))
    settings = EcomSettings(data_dir=str(tmp_path))
    card, _ = churn_assets.train_and_register(settings, training, "manual", "")
    assert card["status"] == "no_skill" and not card["promoted"]
    assert card["baseline_skill"]["has_skill"] is False and card["baseline_skill"]["ci_low"] <= 0
    assert "no skill: neither the model nor the best classic" in card["status_reason"]
    assert "no skill" in registry.serving_in_words(settings.models)
    now = training.filter(pl.col("is_holdout")).drop("churned").with_columns(
        **{c: pl.lit(None, pl.Float64) for c in ("p_alive", "expected_purchases_90d", "n_sessions",
                                                  "days_since_last_session")})
    scored, how = churn_assets.score_customers(settings, now, card)
    assert "no skill" in how
    assert scored["model_version"].unique().to_list() == [churn_assets.NO_SKILL_VERSION]
    assert scored["risk_tier"].unique().to_list() == [churn_assets.NO_SKILL_TIER]
    gated, holdout, _ = churn_assets.split_windows(training)
    base_rate = float(pl.concat([gated, holdout])["churned"].mean())  # the labelled customers the gate judged on
    assert np.allclose(scored["churn_probability"].to_numpy(), base_rate)
    assert scored["churn_probability_low"].max() < base_rate < scored["churn_probability_high"].min()
    assert all(d[0].startswith("no skill") for d in scored["top_drivers"].to_list())
    # and each row of the list says it (tryout: "no skill" was only in the CLI and the dashboard), with the card's
    # holdout figure of the best classic
    skill = card["baseline_skill"]
    assert set(scored["score_basis"]) == {
        f"no skill: base rate {base_rate:.2f} for every buyer (nothing ranked better than chance on the holdout: "
        f"neither the churn model nor the best classic, {skill['classic']} at AUC {skill['holdout_auc']:.3f}, 95 % "
        f"CI of the gain over chance {skill['ci_low']:+.3f}…{skill['ci_high']:+.3f})"}


def test_a_classic_that_ranks_keeps_serving_its_own_order() -> None:
    """The same check on a log where the BG/NBD carries the churn probability: the classic has skill."""
    train, holdout, _ = churn_assets.split_windows(planted(seed=6))
    baseline = churn.fit_baseline(train, holdout, train.head(0))
    assert baseline["classic_skill"]["has_skill"] and churn.classic_has_skill(baseline)
    assert churn.classic_has_skill({"classic": "recency"})  # saved before the check, or never judged: serves


def test_the_auc_difference_of_one_class_labels_is_refused_with_a_reason() -> None:
    """A holdout where every customer churned has no AUC: before, numpy's percentile of an empty array
    raised an IndexError that named nothing."""
    with pytest.raises(ValueError, match="one class only"):
        evaluate.bootstrap_auc_difference(np.ones(40), np.linspace(0, 1, 40), np.linspace(1, 0, 40), n_boot=20)


def _buyers_today(n: int = 400, seed: int = 3) -> pl.DataFrame:
    """Rows of `customer_features` today with the BG/NBD's inputs (days), its columns fitted on them, plus three
    planted buyers alike but for their timing: `late` (a purchase every 20 days, none for 90), `early` (same
    gap, last one 5 days ago) and `once` (one purchase day, 380 days ago)."""
    from ecom_assets.features import btyd

    rng = np.random.default_rng(seed)
    x = rng.poisson(2.0, n).astype(float)
    age = rng.uniform(100, 400, n).round()
    span = np.where(x > 0, np.floor(rng.uniform(0, 1, n) * age), 0.0)
    x, age, span = (np.append(v, extra) for v, extra in ((x, [4.0, 4.0, 0.0]), (age, [170.0, 85.0, 380.0]),
                                                          (span, [80.0, 80.0, 0.0])))
    frame = pl.DataFrame({
        "customer_id": [f"B{i:04d}" for i in range(n)] + ["late", "early", "once"], "as_of": HOLDOUT,
        "cold_start": False, "repeat_purchases": x, "days_since_first_purchase": age,
        "days_since_last_purchase": age - span, "gap_mean_days": np.where(x > 0, span / np.maximum(x, 1), np.nan),
        "n_purchases": x + 1, "aov": 50.0, "tenure_days": age, "n_sessions": x + 1, "days_since_last_session": age - span,
    }).with_columns(pl.col("gap_mean_days").fill_nan(None))
    return btyd.add_btyd_features(frame)[0]


def test_a_serving_bgnbd_baseline_gives_each_customer_the_inputs_that_move_them(tmp_path) -> None:
    """Tryout: with the calibrated BG/NBD serving (the model did not beat it) every row's one driver was "BG/NBD
    repeat-purchase outlook": honest, but the same for everybody. Now each buyer's drivers are the BG/NBD's
    inputs in the direction they move that customer's P(no purchase in 90 days) against a reference, and the
    row says what scored it and how well (the card's holdout AUC of the BG/NBD)."""
    from ecom_assets.churn import risk_list
    from ecom_assets.features import btyd
    from ecom_assets.settings import EcomSettings

    settings = EcomSettings(data_dir=str(tmp_path))
    card, _ = churn_assets.train_and_register(settings, planted(n=1500).with_columns(as_of=pl.col("cutoff")), "manual", "")
    assert card["status"] == "no_skill" and card["baseline_classic"] == "bgnbd", card["status_reason"]
    today = _buyers_today()
    scored, _ = churn_assets.score_customers(settings, today, card)
    assert scored["model_version"].unique().to_list() == ["baseline-bgnbd"]
    # the drivers rest on the very fit behind the features' column (refitted: the same parameters)
    x, t_x, age = btyd.summary_columns(today)
    assert np.allclose(btyd.p_no_purchase(btyd.fit_to(today)[0], x, t_x, age), today["bgnbd_churn_90d"].to_numpy())
    assert churn.bgnbd_drivers(today, btyd.BgNbdParams(1.0, 10.0, 1.0, 1.0)) is None  # another fit explains nothing
    drivers = dict(zip(scored["customer_id"], scored["top_drivers"].to_list()))
    assert len({tuple(d) for d in drivers.values()}) > 5  # per customer, not one outlook for all
    assert drivers["late"][0] == "days_overdue ↑" and "days_overdue ↓" in drivers["early"]
    assert drivers["once"] == ["days_since_first_purchase ↑"]  # BG/NBD's only input for a one-purchase buyer
    p = dict(zip(scored["customer_id"], scored["churn_probability"]))
    assert p["late"] > p["early"]  # the served score moves the way the driver says
    # what scored them, with the card's holdout figure
    assert set(scored["score_basis"]) == {f"BG/NBD baseline (repeat-purchase model), holdout AUC "
                                          f"{card['metrics']['auc_classic_bgnbd']:.3f} (the churn model did not beat it)"}
    listed, _ = risk_list.build_risk_list(scored, today)
    words = dict(zip(listed["customer_id"], listed["drivers"]))
    assert words["late"].startswith("past their usual gap between purchases (raises risk)")
    assert "not yet past their usual gap between purchases (lowers risk)" in words["early"]
    assert words["once"] == "first purchase longer ago than most customers' (raises risk)"


def test_a_holdout_where_every_buyer_churned_is_no_crash_and_judges_nothing(tmp_path) -> None:
    """A tryout dropped a GA4 export alone: every tracker device bought once and never again, so every buyer of
    the newest labelled window churned. The best classic's check against chance raised (one class: no AUC) and
    `ecom-assets run` failed in churn_model. Expected: a card (insufficient history: no retained customer to
    learn from), no AUC judged on that window, and the calibrated classic serving unjudged."""
    from ecom_assets.settings import EcomSettings

    training = planted(n=800, seed=11).with_columns(as_of=pl.col("cutoff"))
    training = training.with_columns(churned=pl.when(pl.col("is_holdout")).then(True).otherwise(pl.col("churned")))
    card, served = churn_assets.train_and_register(EcomSettings(data_dir=str(tmp_path)), training, "initial", "")
    assert card["status"] == "insufficient_history" and served is None
    assert "0 retained" in card["status_reason"]
    gated, holdout, _ = churn_assets.split_windows(training)
    baseline = churn.fit_baseline(gated, holdout, training.clear())
    assert baseline["classic_skill"] is None and baseline["classic"] is not None
    assert all(c["holdout_auc"] is None for c in baseline["classics"].values())
