"""The marketer's churn list and the never-buyer scorer, each rule on planted customers.

The planted rows look like what the pipeline produces (a `churn_predictions` row beside its
`customer_features` row); each test plants the one situation the rule is about.
"""

import warnings
from datetime import date, timedelta

import dagster as dg
import numpy as np
import polars as pl

from ecom_assets.churn import cold_start, risk_list
from ecom_assets.churn.assets import RISK_LIST_COLUMNS, churn_risk_list
from ecom_assets.features import btyd
from ecom_assets.resources import build_resources

AS_OF = date(2024, 12, 30)


def _customers(rows: list[dict]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(predictions, features) for planted customers; every key not given takes a regular repeat
    buyer's value (6 orders of ~50, a purchase every 30 days, last one 20 days ago)."""
    default = {"churn_probability": 0.6, "churn_probability_low": 0.5, "churn_probability_high": 0.7,
               "risk_tier": "medium", "top_drivers": ["days_since_last_purchase ↑"], "cold_start_reason": None,
               "model_version": "v0001", "score_basis": "XGBoost model v0001, holdout AUC 0.750 (the best classic, "
               "bgnbd: 0.700)", "cold_start": False, "n_purchases": 6.0, "aov": 50.0, "tenure_days": 400.0,
               "gap_mean_days": 30.0, "gap_std_days": 5.0, "days_since_last_purchase": 20.0,
               "repeat_purchases": 5.0, "days_since_first_purchase": 170.0, "last_purchase_month": 12.0,
               "n_sessions": 14.0,
               "days_since_last_session": 10.0, "sessions_30d": 2.0, "purchases_30d": 1.0, "sessions_prev_60d": 3.0,
               "purchases_prev_60d": 2.0, "browsing_mean_30d": 120.0, "browsing_mean_sec": 110.0,
               "days_since_signup": 420.0, "age": 41.0, "gender": "F", "location": "Leeds"}
    frame = pl.DataFrame([{**default, **r} for r in rows]).with_columns(as_of=pl.lit(AS_OF))
    prediction_columns = ["customer_id", "churn_probability", "churn_probability_low", "churn_probability_high",
                          "risk_tier", "top_drivers", "cold_start_reason", "model_version", "score_basis", "as_of",
                          "cold_start"]
    extra = [c for c in ("expected_purchases_90d", "bgnbd_churn_90d") if c in frame.columns]
    features = frame.select("customer_id", "as_of", "cold_start",
                            *[c for c in risk_list.FEATURE_INPUTS if c != "customer_id"])
    return frame.select(*prediction_columns, *extra), features


def test_ties_are_broken_by_value_then_recency_never_by_id() -> None:
    # A, B, C, D carry the same value at risk (0.8 x 62.50 = 0.5 x 100 = 50); ids sort against the rule
    # (BG/NBD's P(no purchase) planted equal to the served score, so the expected purchases are BG/NBD's E[N])
    same = {"churn_probability": 0.8, "bgnbd_churn_90d": 0.8, "expected_purchases_90d": 1.25, "n_purchases": 40.0,
            "aov": 50.0}
    predictions, features = _customers([
        {"customer_id": "A", **same, "days_since_last_purchase": 60.0},
        {"customer_id": "B", **same, "days_since_last_purchase": 5.0},
        {"customer_id": "C", **same, "days_since_last_purchase": 5.0},  # B and C: identical in every key
        {"customer_id": "D", "churn_probability": 0.5, "bgnbd_churn_90d": 0.5, "expected_purchases_90d": 2.0,
         "n_purchases": 40.0},
        {"customer_id": "E", "churn_probability": 0.9, "bgnbd_churn_90d": 0.9, "expected_purchases_90d": 3.0,
         "n_purchases": 40.0},
    ])
    listed, _ = risk_list.build_risk_list(predictions, features)
    # E: most value at risk. A, B, C, D: 50.00 each; D has the larger expected value (100 vs 62.50); then
    # recency: B and C (5 days) before A (60 days); B and C are tied and share their rank
    values = dict(zip(listed["customer_id"], listed["value_at_risk"]))
    assert values["A"] == values["B"] == values["C"] == values["D"] == 50.0
    assert set(listed["status"]) == {"at_risk"}
    order = listed["customer_id"].to_list()
    assert order[:2] == ["E", "D"] and order[-1] == "A"
    ranks = dict(zip(listed["customer_id"], listed["rank"]))
    assert ranks == {"E": 1, "D": 2, "B": 3, "C": 3, "A": 5}


def test_lapsed_is_told_apart_from_at_risk() -> None:
    predictions, features = _customers([
        # 200 days without a purchase, usually every 30: lapsed (> 2 x 30 and > 180)
        {"customer_id": "gone", "churn_probability": 0.95, "days_since_last_purchase": 200.0, "gap_mean_days": 30.0},
        # 200 days, but usually every 150 days: not yet twice the gap -> at risk
        {"customer_id": "slow", "churn_probability": 0.8, "days_since_last_purchase": 200.0, "gap_mean_days": 150.0},
        # 120 days, usually every 20: over twice the gap, but not 180 days -> at risk
        {"customer_id": "late", "churn_probability": 0.7, "days_since_last_purchase": 120.0, "gap_mean_days": 20.0},
        # one purchase 190 days ago: judged by the repeat buyers' median gap (30) -> lapsed
        {"customer_id": "once", "churn_probability": 0.9, "days_since_last_purchase": 190.0, "gap_mean_days": None,
         "n_purchases": 1.0},
        # 400 days, usually every 60, but the calibrated model expects them back (0.34): active, never
        # "lapsed" beside a low churn probability (tryout: 10 lapsed customers sat in the low tier)
        {"customer_id": "back", "churn_probability": 0.34, "days_since_last_purchase": 400.0, "gap_mean_days": 60.0},
        {"customer_id": "fine", "churn_probability": 0.2},
        {"customer_id": "new", "churn_probability": 0.9, "cold_start": True, "n_purchases": 0.0, "aov": None,
         "days_since_last_purchase": None, "gap_mean_days": None},
    ])
    listed, _ = risk_list.build_risk_list(predictions, features)
    status = dict(zip(listed["customer_id"], listed["status"]))
    assert status == {"gone": "lapsed", "slow": "at_risk", "late": "at_risk", "once": "lapsed", "back": "active",
                      "fine": "active", "new": "never_purchased"}
    # the persuadable lead the list, the lapsed (win-back) follow the active, whatever their value
    assert listed["status"].to_list() == ["at_risk", "at_risk", "active", "active", "lapsed", "lapsed",
                                          "never_purchased"]


def test_a_customer_without_recent_visits_is_told_so_not_blamed_on_a_missing_value() -> None:
    drivers = ["browsing_mean_30d ↑", "session_trend ↑", "days_since_last_purchase ↑"]
    features = pl.DataFrame({
        "customer_id": ["away", "here"], "sessions_30d": [0.0, 3.0], "purchases_30d": [0.0, 1.0],
        "browsing_mean_30d": [None, 95.0], "sessions_prev_60d": [0.0, 1.0], "purchases_prev_60d": [0.0, 0.0],
        "gap_mean_days": [40.0, 40.0]})
    words = risk_list.driver_words(features, pl.Series("top_drivers", [drivers, drivers])).to_list()
    # both empty-window drivers are one fact, said once
    assert words[0] == "no visits in the last 30 days (raises risk); days since the last purchase (raises risk)"
    assert words[1] == ("mean browsing time in the last 30 days (raises risk); visits last 30 days vs the 60 before "
                        "(per day) (raises risk); days since the last purchase (raises risk)")
    one_purchase = pl.DataFrame({"customer_id": ["x"], "gap_mean_days": [None]}, schema_overrides={"gap_mean_days": pl.Float64})
    assert risk_list.driver_words(one_purchase, pl.Series([["days_overdue ↓", "never purchased"]])).to_list() == [
        "only one purchase day so far (no typical gap yet) (lowers risk); never purchased"]


def test_event_session_details_of_a_customer_without_visits_in_90_days_say_so() -> None:
    # an events shop: a lapsed customer's 90-day session features are empty, not "long visits"
    drivers = ["session_duration_mean_90d ↑", "days_since_last_purchase ↑"]
    features = pl.DataFrame({"customer_id": ["gone", "recent", "earlier"], "sessions_30d": [0.0, 2.0, 0.0],
                             "sessions_prev_60d": [0.0, 0.0, 1.0]})
    words = risk_list.driver_words(features, pl.Series("top_drivers", [drivers] * 3)).to_list()
    assert words[0] == "no visits in the last 90 days (raises risk); days since the last purchase (raises risk)"
    assert words[1] == words[2] == "mean visit duration (last 90 days) (raises risk); days since the last purchase (raises risk)"


def test_interval_bounds_contain_the_probability_and_narrow_with_more_customers() -> None:
    p = np.array([0.02, 0.5, 0.97, 0.5, np.nan, 0.3])
    n = np.array([400, 40, 400, 4000, 100, 0])
    low, high = risk_list.probability_interval(p, n)
    assert np.all(low[:4] < p[:4]) and np.all(p[:4] < high[:4])
    assert (high[3] - low[3]) < (high[1] - low[1])  # 4,000 customers vs 40
    assert np.isnan(low[4]) and np.isnan(high[5])  # no probability / no support: no interval, not a guess
    assert 0.0 <= low.min(where=~np.isnan(low), initial=1) and np.nanmax(high) <= 1.0


def test_value_prefers_the_btyd_expectation_and_falls_back_to_the_own_purchase_rate() -> None:
    rows = [{"customer_id": "A", "churn_probability": 0.4, "n_purchases": 9.0, "tenure_days": 270.0, "aov": 80.0}]
    predictions, features = _customers(rows)
    listed, how = risk_list.build_risk_list(predictions, features)
    # own rate: 9 purchases in 270 days = 3 per 90 days; P(any purchase) = 0.6 -> 1.8 purchases
    assert listed["expected_purchases_90d"][0] == 1.8 and "own purchase rate" in how["expected_purchases"]
    # BG/NBD: 2.8 purchases expected, P(none) 0.5 -> 5.6 of a customer who buys; the served P(buy) is 0.6
    predictions, features = _customers([{**rows[0], "expected_purchases_90d": 2.8, "bgnbd_churn_90d": 0.5}])
    listed, how = risk_list.build_risk_list(predictions, features)
    assert listed["expected_purchases_90d"][0] == 3.36 and "BG/NBD" in how["expected_purchases"]
    # one customer: no Gamma-Gamma fit, spend per order = own AOV
    assert listed["spend_per_order"][0] == 80.0
    assert listed["expected_value_90d"][0] == 268.8 and listed["value_at_risk"][0] == 107.52


def test_the_value_follows_the_served_probability_not_bgnbds_own_p_alive() -> None:
    """Tryout: a buyer whose purchases decayed, listed at churn 0.99, was valued at BG/NBD's 3 expected purchases
    (BG/NBD still called them alive), as much as a steady buyer at churn 0.01: the value columns contradicted the
    served score. Now both take P(buy) from the served score."""
    rows = [{"customer_id": "decayed", "churn_probability": 0.99, "expected_purchases_90d": 3.0, "bgnbd_churn_90d": 0.05},
            {"customer_id": "steady", "churn_probability": 0.01, "expected_purchases_90d": 3.0, "bgnbd_churn_90d": 0.05}]
    predictions, features = _customers(rows)
    listed, _ = risk_list.build_risk_list(predictions, features)
    expected = dict(zip(listed["customer_id"], listed["expected_purchases_90d"]))
    assert expected == {"decayed": round(0.01 * 3.0 / 0.95, 2), "steady": round(0.99 * 3.0 / 0.95, 2)}


def test_gamma_gamma_recovers_planted_spend_and_shrinks_thin_customers() -> None:
    # the model's own generative process: per customer a scale nu ~ Gamma(q, gamma), orders ~ Gamma(p, nu)
    rng = np.random.default_rng(4)
    p, q, gamma = 4.0, 5.0, 40.0
    nu = rng.gamma(q, 1 / gamma, 8000)
    orders = rng.integers(1, 8, 8000)
    aov = np.array([rng.gamma(p, 1 / v, k).mean() for v, k in zip(nu, orders)])
    fit = btyd.fit_gamma_gamma(orders, aov)
    assert fit is not None and fit["converged"]
    assert abs(fit["population_mean"] - p * gamma / (q - 1)) / (p * gamma / (q - 1)) < 0.05
    spend = pl.DataFrame({"x": [1.0, 50.0], "m": [500.0, 500.0]}).select(
        btyd.spend_per_order(fit, pl.col("x"), pl.col("m"))).to_series()
    # with the planted parameters one order of 500 weighs p/(p+q-1) = 1/2 against the mean of 40 -> 270;
    # fifty orders of 500 -> (4 x 40 + 200 x 500) / 204 = 491 (Fader & Hardie 2013, eq. 5)
    assert abs(spend[0] - 270) < 0.05 * 270 and abs(spend[1] - 491) < 0.02 * 491
    assert btyd.fit_gamma_gamma(np.array([1, 2]), np.array([10.0, 0.0])) is None  # too few to fit


def _never_buyers(rng: np.random.Generator, n: int, signal: bool, window: int) -> pl.DataFrame:
    """Never-buyers of one training window: recent, frequent visitors buy next more often (if `signal`)."""
    days = rng.integers(0, 400, n).astype(float)
    visits = rng.integers(1, 12, n).astype(float)
    logit = 2.5 - 0.8 * np.log1p(visits) + 0.6 * np.log1p(days) - 3.0 if signal else np.zeros(n) + 1.5
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pl.DataFrame({
        "customer_id": [f"N{window}_{i}" for i in range(n)], "cold_start": True, "churned": churned,
        "is_holdout": window == 0, "cutoff": AS_OF - timedelta(days=30 * window), "n_sessions": visits, "days_since_last_session": days,
        "tenure_days": days + rng.integers(0, 200, n), "sessions_30d": np.where(days < 30, 1.0, 0.0),
        "sessions_prev_60d": np.where((days >= 30) & (days < 90), 1.0, 0.0),
        "browsing_mean_sec": pl.Series(rng.gamma(2, 60, n)).set(pl.Series(rng.random(n) < 0.3), None)})


def test_never_buyers_who_visited_recently_score_lower_than_one_visit_long_ago() -> None:
    rng = np.random.default_rng(8)
    training = pl.concat([_never_buyers(rng, 1500, True, w) for w in (0, 3, 6)])
    model = cold_start.fit(training)
    assert model["method"] == "logistic", model["reason"]
    assert model["gate"]["auc_diff_ci_low"] > 0
    today = pl.DataFrame({"customer_id": ["regular", "one_off"], "n_sessions": [6.0, 1.0],
                          "days_since_last_session": [3.0, 300.0], "tenure_days": [200.0, 300.0],
                          "sessions_30d": [2.0, 0.0], "sessions_prev_60d": [2.0, 0.0], "browsing_mean_sec": [80.0, None]})
    scored = cold_start.score(model, today)
    p = dict(zip(scored["customer_id"], scored["churn_probability"]))
    assert p["regular"] < p["one_off"]
    assert scored["cold_start_reason"].to_list()[:2] == [
        "never purchased: 6 visits, last 3 days ago; scored from their visits",
        "never purchased: 1 visit, 300 days ago; scored from their visits"]
    assert (scored["churn_probability_low"] < scored["churn_probability"]).all()
    assert (scored["churn_probability"] < scored["churn_probability_high"]).all()


def test_never_buyers_without_signal_get_the_prior_and_are_told_why() -> None:
    rng = np.random.default_rng(9)
    # windows every 30 days: those 30 and 60 days before the holdout have labels inside its horizon
    training = pl.concat([_never_buyers(rng, 1500, False, w) for w in (0, 1, 2, 3, 6)])
    model = cold_start.fit(training)
    assert model["method"] == "prior" and "did not predict" in model["reason"]
    train_rate = training.filter(pl.col("cutoff") <= AS_OF - timedelta(days=90))["churned"].mean()
    assert model["prior"] == train_rate  # the gated training windows' rate, not the holdout's
    today = training.head(2).drop("churned", "is_holdout")
    scored = cold_start.score(model, today)
    assert scored["churn_probability"].to_list() == [train_rate] * 2
    assert scored["cold_start_reason"][0].endswith("no signal in their visits: " + model["reason"])
    few = cold_start.fit(training.head(30))
    assert few["method"] == "prior" and "too few never-buyers" in few["reason"]


def test_risk_list_csv_is_rounded_and_safe_for_spreadsheets(tmp_path) -> None:
    data_dir = tmp_path / "data"
    predictions, features = _customers([
        {"customer_id": "=HYPERLINK(\"http://x\")", "churn_probability": 0.612345678, "aov": 33.333333,
         "top_drivers": ["location ↑"], "location": None},
        {"customer_id": "C2", "churn_probability": 0.3, "aov": 12.129999, "cold_start_reason": "-1 visits"},
    ])

    @dg.asset(name="churn_predictions")
    def planted_predictions() -> pl.DataFrame:
        return predictions

    @dg.asset(name="customer_features")
    def planted_features() -> pl.DataFrame:
        return features

    @dg.asset(name="clean_customers")
    def planted_customers() -> pl.DataFrame:  # C2 signed up; "@new" only signed up (never visited, never bought)
        return pl.DataFrame({"customer_id": ["C2", "@new"], "signup_date": [date(2024, 1, 5), date(2024, 12, 1)]})

    result = dg.materialize([planted_predictions, planted_features, planted_customers, churn_risk_list],
                            resources=build_resources(data_dir), instance=dg.DagsterInstance.ephemeral())
    assert result.success
    text = (data_dir / "exports" / "churn_risk_list.csv").read_text()
    back = pl.read_csv(data_dir / "exports" / "churn_risk_list.csv", infer_schema=False)
    assert back.columns == list(RISK_LIST_COLUMNS)
    assert set(back["customer_id"]) == {"'=HYPERLINK(\"http://x\")", "C2", "'@new"}
    assert "'-1 visits" in text and "location unknown (raises risk)" in text
    for column in ("value_at_risk", "expected_value_90d", "expected_purchases_90d", "spend_per_order"):
        assert all(len(v.split(".")[-1]) <= 2 for v in back[column].drop_nulls()), column
    assert all(len(v.split(".")[-1]) <= 4 for v in back["churn_probability"].drop_nulls())
    assert back["status"].to_list() == ["at_risk", "active", "never_purchased"]


def test_cold_start_reasons_say_today_and_one_day() -> None:
    model = {"method": "prior", "prior": 0.9, "prior_rows": 100, "reason": "no labelled windows yet"}
    frame = pl.DataFrame({"customer_id": ["a", "b"], "n_sessions": [2.0, 1.0], "days_since_last_session": [0.0, 1.0]})
    reasons = cold_start.score(model, frame)["cold_start_reason"].to_list()
    assert reasons == ["never purchased: 2 visits, last today; no labelled windows yet",
                       "never purchased: 1 visit, 1 day ago; no labelled windows yet"]


def test_drivers_follow_each_customers_own_contributions_and_at_risk_lists_what_raises_risk_first() -> None:
    from ecom_assets.churn.model import top_drivers

    # planted contributions (log-odds) of three features: for each customer the strongest one LOWERS risk
    # (a recent purchase), the two weaker ones raise it; "calm" has the same contributions but a low probability
    names = ["days_since_last_purchase", "aov", "distinct_categories"]
    contribs = np.array([[-0.9, 0.5, 0.2], [-0.9, 0.5, 0.2], [0.4, -0.1, 0.3]], dtype=np.float32)
    drivers = top_drivers(contribs, names).to_list()
    predictions, features = _customers([
        {"customer_id": "worried", "churn_probability": 0.8, "top_drivers": drivers[0]},
        {"customer_id": "calm", "churn_probability": 0.2, "top_drivers": drivers[1]},
        {"customer_id": "mixed", "churn_probability": 0.7, "top_drivers": drivers[2]},
        # a classic baseline's one driver below the base rate: at risk only because churn is common here
        {"customer_id": "classic", "churn_probability": 0.6, "top_drivers": ["bgnbd_churn_90d ↓"]},
    ])
    listed, _ = risk_list.build_risk_list(predictions, features)
    words = dict(zip(listed["customer_id"], listed["drivers"]))
    status = dict(zip(listed["customer_id"], listed["status"]))
    assert status == {"worried": "at_risk", "calm": "active", "mixed": "at_risk", "classic": "at_risk"}
    # every direction is the sign of the customer's own contribution, whatever their status
    assert words["worried"] == ("average order value (raises risk); number of product categories viewed (raises "
                                "risk); days since the last purchase (lowers risk)")
    assert words["calm"] == ("days since the last purchase (lowers risk); average order value (raises risk); "
                             "number of product categories viewed (raises risk)")  # strength order kept
    assert words["mixed"] == ("days since the last purchase (raises risk); number of product categories viewed "
                              "(raises risk); average order value (lowers risk)")
    assert words["classic"] == (risk_list.BASE_RATE_WORDS + "; " + risk_list.DRIVER_WORDS["bgnbd_churn_90d"]
                                + " (lowers risk)")
    for row in listed.filter(pl.col("status") == "at_risk").iter_rows(named=True):
        assert "raises risk" in row["drivers"].split("; ")[0], row
    # where most customers are safe (mean churn probability 0.3), the base rate is not what raises it
    calm = [{"customer_id": f"calm{i}", "churn_probability": 0.2, "top_drivers": drivers[1]} for i in range(4)]
    predictions, features = _customers(calm + [{"customer_id": "classic", "churn_probability": 0.7,
                                                "top_drivers": ["days_since_last_purchase ↓"]}])
    listed, _ = risk_list.build_risk_list(predictions, features)
    assert listed.filter(pl.col("customer_id") == "classic")["drivers"][0] == (
        "smaller factors not listed together raise risk; days since the last purchase (lowers risk)")


def test_never_buyers_are_valued_at_a_first_order_not_at_the_populations_mean_spend() -> None:
    # a shop where 40 loyal customers order ~900 twenty times each, while 40 newcomers' one (first) order is
    # ~40; a proven buyer (8 orders of ~150) is at risk; two never-buyers have a 50 % chance to buy at all
    rng = np.random.default_rng(12)
    loyal = [{"customer_id": f"L{i}", "churn_probability": 0.2, "n_purchases": 20.0, "aov": float(rng.normal(900, 60)),
              "expected_purchases_90d": 5.0} for i in range(40)]
    newcomers = [{"customer_id": f"N{i}", "churn_probability": 0.3, "n_purchases": 1.0, "aov": float(rng.normal(40, 8)),
                  "gap_mean_days": None, "expected_purchases_90d": 0.7} for i in range(40)]
    proven = {"customer_id": "proven", "churn_probability": 0.6, "n_purchases": 8.0, "aov": 150.0,
              "expected_purchases_90d": 0.5}
    never = [{"customer_id": f"never{i}", "churn_probability": 0.5, "cold_start": True, "n_purchases": 0.0, "aov": None,
              "days_since_last_purchase": None, "gap_mean_days": None, "expected_purchases_90d": None} for i in (1, 2)]
    predictions, features = _customers(loyal + newcomers + [proven] + never)
    listed, how = risk_list.build_risk_list(predictions, features)
    rows = {r["customer_id"]: r for r in listed.iter_rows(named=True)}
    first_order = float(np.mean([c["aov"] for c in newcomers]))
    assert abs(rows["never1"]["spend_per_order"] - first_order) <= 0.005
    assert rows["never1"]["expected_purchases_90d"] == 0.5
    assert abs(rows["never1"]["value_at_risk"] - 0.5 * 0.5 * first_order) <= 0.01  # P(churn) x P(first order) x its value
    # the proven buyer's money at risk is larger, and they come first in the list
    assert rows["proven"]["value_at_risk"] > 4 * rows["never1"]["value_at_risk"]
    assert rows["proven"]["rank"] < rows["never1"]["rank"]
    assert "first order" in how["never_buyers_spend_per_order"] and "40 customers" in how["never_buyers_spend_per_order"]
    # too few one-order buyers to say what a first order is worth: unknown, not the population's mean
    predictions, features = _customers(loyal + newcomers[:5] + [proven] + never)
    listed, how = risk_list.build_risk_list(predictions, features)
    assert listed.filter(pl.col("cold_start"))["value_at_risk"].null_count() == 2
    assert how["never_buyers_spend_per_order"].startswith("unknown")


def test_a_shop_without_spend_heterogeneity_gives_a_list_without_runtime_warnings() -> None:
    # the seed export's spend: every order uniform between 5 and 2,000, whoever buys (no customer spends
    # more than another), 400 buyers of 1-14 orders; this draw overflowed exp() in the Gamma-Gamma search
    rng = np.random.default_rng(11)
    orders = rng.integers(1, 15, 400)
    aov = [round(float(rng.uniform(5, 2000, k).mean()), 2) for k in orders]
    predictions, features = _customers([{"customer_id": f"S{i}", "n_purchases": float(k), "aov": a}
                                        for i, (k, a) in enumerate(zip(orders, aov))])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        listed, how = risk_list.build_risk_list(predictions, features)
    # no heterogeneity to shrink towards: every customer's spend per order is about the population's mean
    mean = float(np.average(aov, weights=orders))
    assert (listed["spend_per_order"] - mean).abs().max() < 0.05 * mean, how["spend_per_order"]
    # and the list says so (tryout: one spend for everybody, nothing saying why)
    assert "no spend differences between customers beyond chance" in how["spend_per_order"], how["spend_per_order"]


def test_the_value_basis_says_how_much_a_buyers_own_aov_counts() -> None:
    """With the planted Gamma-Gamma of test_gamma_gamma_recovers_planted_spend (p 4, q 5), a buyer with the
    median of 4 orders weighs their own AOV 16 / (16 + 4) = 80 %."""
    rng = np.random.default_rng(4)
    nu = rng.gamma(5.0, 1 / 40.0, 3000)
    aov = [round(float(rng.gamma(4.0, 1 / v, 4).mean()), 2) for v in nu]
    predictions, features = _customers([{"customer_id": f"G{i}", "n_purchases": 4.0, "aov": a}
                                        for i, a in enumerate(aov)])
    _, how = risk_list.build_risk_list(predictions, features)
    weight = int(how["spend_per_order"].split("a buyer with 4 orders: ")[1].split("%")[0])
    assert 75 <= weight <= 85, how["spend_per_order"]


def test_the_bgnbd_views_of_one_customer_are_one_driver_never_pulling_opposite_ways() -> None:
    """Quirk: P(alive), expected purchases and P(no purchase in 90 days) come from one BG/NBD fit, so the
    trees split the same information across them; one customer's contributions were P(alive) +0.6 (raises
    risk) and P(no purchase) -0.4 (lowers risk), shown as two drivers contradicting each other. Shown as one
    BG/NBD outlook whose direction is their sum (+0.6 - 0.4 - 0.1 = +0.1: raises risk)."""
    from ecom_assets.churn.model import top_drivers

    names = ["days_since_last_purchase", "p_alive", "bgnbd_churn_90d", "expected_purchases_90d", "aov"]
    contribs = np.array([[0.3, 0.6, -0.4, -0.1, 0.05],
                         [-0.2, -0.5, -0.3, 0.1, 0.01]], dtype=np.float32)  # all three lower: sum -0.7, strongest
    drivers = top_drivers(contribs, names).to_list()
    assert drivers == [["days_since_last_purchase ↑", "bgnbd_churn_90d ↑", "aov ↑"],
                       ["bgnbd_churn_90d ↓", "days_since_last_purchase ↓", "aov ↑"]]
    predictions, features = _customers([{"customer_id": "A", "churn_probability": 0.7, "top_drivers": drivers[0]}])
    listed, _ = risk_list.build_risk_list(predictions, features)
    said = listed["drivers"][0]
    assert said == ("days since the last purchase (raises risk); BG/NBD repeat-purchase outlook (P(alive), expected "
                    "purchases and P(no purchase in 90 days) together) (raises risk); average order value (raises risk)")
    assert "P(alive) low" not in said and said.count("BG/NBD") == 1


def test_customers_known_only_from_the_customers_file_are_listed_unscored_with_the_reason() -> None:
    """Quirk: a shop's customers file holds people who signed up but never visited nor bought (and one
    with no signup date, and one whose signup is after the data's as-of date); they have no features, so
    they were missing from the list. A marketer expects every known customer: listed, never purchased,
    unscored (nothing they did to score them on), and the reason said."""
    predictions, features = _customers([{"customer_id": "A", "churn_probability": 0.7},
                                        {"customer_id": "B", "churn_probability": 0.2}])
    customers = pl.DataFrame({"customer_id": ["A", "S1", "S2", "S3"],
                              "signup_date": [date(2023, 1, 1), date(2024, 11, 2), None, AS_OF + timedelta(days=3)]})
    listed, _ = risk_list.build_risk_list(predictions, features, customers)
    assert sorted(listed["customer_id"]) == ["A", "B", "S1", "S2", "S3"]  # B has sessions, not in the file: kept
    only_signed_up = listed.filter(pl.col("customer_id").is_in(["S1", "S2", "S3"]))
    assert only_signed_up["status"].unique().to_list() == ["never_purchased"]
    assert only_signed_up["risk_tier"].unique().to_list() == ["unscored"]
    assert only_signed_up["churn_probability"].null_count() == 3 and only_signed_up["value_at_risk"].null_count() == 3
    reasons = dict(zip(only_signed_up["customer_id"], only_signed_up["cold_start_reason"]))
    assert reasons["S1"] == ("not scored: known only from the customers file (signed up 2024-11-02), no visit and "
                             "no purchase yet, and the never-buyers' scorer learns from visits")
    assert "(no signup date)" in reasons["S2"] and "after the data's as-of date" in reasons["S3"]
    assert set(listed["customer_id"].to_list()[-3:]) == {"S1", "S2", "S3"}  # after every scored customer
    assert listed["as_of"].null_count() == 0 and listed["model_version"].unique().to_list() == ["v0001"]


def test_the_status_follows_the_probability_the_list_shows() -> None:
    """Tryout: 0.49996 was listed as 0.5 while its status said it was below the 0.5 at-risk line (active)."""
    predictions, features = _customers([{"customer_id": "A", "churn_probability": 0.49996},
                                         {"customer_id": "B", "churn_probability": 0.49994}])
    listed, _ = risk_list.build_risk_list(predictions, features)
    shown = {r["customer_id"]: (r["churn_probability"], r["status"]) for r in listed.to_dicts()}
    assert shown == {"A": (0.5, "at_risk"), "B": (0.4999, "active")}


def test_the_gap_driver_says_where_the_customer_stands_and_never_contradicts_its_direction() -> None:
    """Tryout: "days past the customer's typical purchase gap (raises risk)" was told to a customer who was early,
    and "(lowers risk)" to one well past it: read as a contradiction. The words now say the customer's own state
    (past / not yet past their usual gap); where a model's direction runs against it, how they compare with the
    other buyers (their median days past the gap) when that explains it, else that the model counts their timing
    that way."""
    def said(overdue: list[float], drivers: list[str]) -> list[str]:
        features = pl.DataFrame({"customer_id": [f"C{i}" for i in range(len(overdue))], "gap_mean_days": 30.0,
                                 "days_since_last_purchase": [30.0 + d for d in overdue]})
        return risk_list.driver_words(features, pl.Series([[d] for d in drivers])).to_list()

    up, down = "days_overdue ↑", "days_overdue ↓"
    # most buyers bought 10 days before their gap ends (median -10)
    words = said([20, -20, -2, -25, 60, -10, -10, -10, -10], [up, down, up, up, down, up, up, up, up])
    assert words[:5] == [
        "past their usual gap between purchases (raises risk)",
        "not yet past their usual gap between purchases (lowers risk)",
        "not yet past their usual gap between purchases, but nearer to it than most customers (raises risk)",
        "not yet past their usual gap between purchases, though the model counts this timing against them (raises risk)",
        "past their usual gap between purchases, though the model counts this timing in their favour (lowers risk)"]
    # where most buyers are 40 days past their gap, one 2 days past it is less late than most
    assert said([2, 40, 40, 40], [down, up, up, up])[0] == (
        "past their usual gap between purchases, but less so than most customers (lowers risk)")
    # no word claims a state the customer is not in
    for text, overdue in zip(words, [20, -20, -2, -25, 60]):
        assert text.startswith("not yet past") == (overdue <= 0), text


def test_a_lapsed_buyer_likely_to_churn_is_told_why_and_a_one_purchase_buyers_p_alive_is_left_empty() -> None:
    """A tryout's BG/NBD-served list: lapsed one-purchase buyers at churn ~0.9 showed p_alive 1.0 (BG/NBD's by
    construction) and one driver only, which lowered risk; the at-risk lead ("why at risk all the same") was
    given to at_risk rows only."""
    predictions, features = _customers([
        {"customer_id": "once", "churn_probability": 0.89, "days_since_last_purchase": 227.0, "gap_mean_days": None,
         "n_purchases": 1.0, "repeat_purchases": 0.0, "p_alive": 1.0, "top_drivers": ["days_since_first_purchase ↓"]},
        {"customer_id": "repeat", "churn_probability": 0.2, "p_alive": 0.83},
        *[{"customer_id": f"r{i}", "churn_probability": 0.3} for i in range(5)],
    ])
    predictions = predictions.with_columns(p_alive=features["customer_id"].replace_strict(
        {"once": 1.0, "repeat": 0.83}, default=0.9, return_dtype=pl.Float64))
    listed, _ = risk_list.build_risk_list(predictions, features)
    row = {r["customer_id"]: r for r in listed.iter_rows(named=True)}
    assert row["once"]["status"] == "lapsed" and row["once"]["p_alive"] is None
    assert row["once"]["drivers"].startswith(risk_list.SMALLER_FACTORS_WORDS)
    assert row["repeat"]["p_alive"] == 0.83 and not row["repeat"]["drivers"].startswith(risk_list.SMALLER_FACTORS_WORDS)


def test_the_month_driver_names_the_month() -> None:
    """A tryout read "month of the last purchase (raises risk)" on 136 rows and could not tell which month."""
    predictions, features = _customers([
        {"customer_id": "march", "churn_probability": 0.3, "last_purchase_month": 3.0,
         "top_drivers": ["last_purchase_month ↑"]},
        {"customer_id": "june", "churn_probability": 0.3, "last_purchase_month": 6.0,
         "top_drivers": ["last_purchase_month ↓"]},
    ])
    listed, _ = risk_list.build_risk_list(predictions, features)
    words = dict(zip(listed["customer_id"], listed["drivers"]))
    assert words == {"march": "last purchase in March (raises risk)", "june": "last purchase in June (lowers risk)"}


def test_a_customer_known_from_orders_only_is_told_of_orders_not_visits() -> None:
    """A tryout's purchase log (customer, date, amount: no visit at all) read "number of visits (raises risk)"."""
    predictions, features = _customers([
        {"customer_id": "log", "churn_probability": 0.3, "n_sessions": 6.0, "n_purchases": 6.0,
         "browsing_mean_sec": None, "top_drivers": ["n_sessions ↑", "sessions_30d ↓"]},
        {"customer_id": "web", "churn_probability": 0.3, "top_drivers": ["n_sessions ↑"]},
    ])
    listed, _ = risk_list.build_risk_list(predictions, features)
    words = dict(zip(listed["customer_id"], listed["drivers"]))
    assert words == {"log": "number of orders (raises risk); orders in the last 30 days (lowers risk)",
                     "web": "number of visits (raises risk)"}


def test_p_alive_is_not_shown_beside_a_no_skill_verdict() -> None:
    """A tryout's 200-day orders log: BG/NBD ranked the holdout at AUC 0.501, every buyer got the base rate (tier
    no_skill), yet every repeat buyer showed p_alive 1.0, read as "certainly still buying"."""
    predictions, features = _customers([{"customer_id": f"c{i}", "churn_probability": 0.49, "risk_tier": "no_skill"}
                                        for i in range(3)])
    predictions = predictions.with_columns(p_alive=pl.lit(1.0))
    listed, _ = risk_list.build_risk_list(predictions, features)
    assert listed["p_alive"].null_count() == 3
