"""The list a marketer acts on: who is likely to leave but still worth an incentive, and why.

Per customer (rows of `churn_predictions` beside their `customer_features`):

- `expected_purchases_90d`: purchases expected in the next 90 days, always P(any purchase) from the
  served score (1 - churn_probability) x the purchases of a customer who does buy: BG/NBD's expectation
  given at least one purchase, E[N] / P(N > 0) (both from the features' BTYD columns; at least 1), else
  their own past rate, max(1, 90 x n_purchases / max(tenure_days, 90)). BG/NBD's E[N] alone folds in its
  own P(alive), which can contradict the served model (a decaying buyer BG/NBD still calls alive was
  valued like a steady one while listed at churn 0.99). Never-buyers: one
  first purchase times P(it happens) (1 - their cold-start churn probability: the share of never-buyers
  like them who bought within 90 days).
- `spend_per_order`: the Gamma-Gamma expected spend per order (Fader & Hardie 2013, "The
  Gamma-Gamma Model of Monetary Value"): each customer's AOV shrunk towards the population mean,
  the less the fewer orders it rests on. Fitted by maximum likelihood (scipy) on the current
  customers' AOV and order count; the closed form is three log-gamma terms, so 500k customers cost
  a fraction of a second, where pymc-marketing's `GammaGammaModel` compiles a PyTensor graph per
  fit (seconds) for the same point estimate. Never-buyers: the mean first order, taken from the
  customers whose one order so far is their first (at least FIRST_ORDER_MIN_CUSTOMERS of them; else
  unknown and left empty), not the population's mean spend per order: repeat buyers' larger orders
  would otherwise put people who never bought above proven buyers.
- `expected_value_90d` = spend_per_order x expected_purchases_90d; `value_at_risk` =
  churn_probability x expected_value_90d. Both factors shrink at the extremes, so the top of the
  list is customers likely to leave who are still likely enough to buy to be worth persuading;
  someone gone for a year has little expected value left and sinks (and is `lapsed`).
- `status` (churn/status.py, the one definition the segments share): `lapsed` (no purchase for more
  than twice their typical gap between purchases and over 180 days, unless the churn probability
  is below 0.5: a win-back case, not retention), `at_risk` (churn_probability >= 0.5),
  `active`, `never_purchased`, `unscored` (no model could score them).
- drivers in plain words; a windowed feature that is empty because nothing happened in its window
  is worded as what it is ("no visits in the last 30 days"), not as its missing value. Each driver's
  direction is the sign of this customer's own contribution to their churn score (as the scorer gave
  it: XGBoost contribution, or the classic's score against its base rate); for `at_risk` customers the
  drivers that raise risk come first, and one whose shown drivers all lower risk is told why they are at
  risk all the same: churn is common here (the buyers' mean churn probability is at least 0.5), or
  else the smaller contributions not shown add up. The words say the customer's own state so that they never
  contradict the direction (`value_words`: "past their usual gap between purchases (raises risk)"). Under the
  BG/NBD baseline the drivers are its inputs, one at a time (`model.bgnbd_drivers`).

`score_basis` (from `churn_predictions`) says on every row what scored it and how well that ranked the holdout,
or why nothing did; `p_alive` is shown only beside a churn probability (an unscored row's BG/NBD P(alive), ~1 for
everyone in a young shop, was never checked against outcomes). A young shop gets no substitute ordering: its
unscored rows keep the recency order below, and their `score_basis` says why.

Customers known only from the customers file (never visited nor bought by the as-of date) are listed
too: `never_purchased`, unscored, the reason in `cold_start_reason` (`customers_without_activity`).

Order: by status — `at_risk` first (the persuadable, where an incentive can still keep value), then
`active`, `lapsed` (win-back), `never_purchased`, `unscored` — and within each by value at risk,
then expected value, then recency of the last purchase and visit (most recent first), all on the
rounded figures the list shows; customers still tied share a `rank` — never ordered by id.
"""

from __future__ import annotations

import calendar

import numpy as np
import polars as pl

from ecom_assets.churn.model import NO_SKILL_TIER, bgnbd_references
from ecom_assets.churn.status import AT_RISK_PROBABILITY, churn_status, typical_gap
from ecom_assets.features.btyd import fit_gamma_gamma, spend_per_order
from ecom_assets.features.build import FEATURE_WORDS, HORIZON_DAYS, SESSION_DETAIL_FEATURES
from ecom_assets.insights.stats import wilson

NOT_SEEN_BASIS = "not scored: no visit and no purchase yet (known only from the customers file)"
STATUS_ORDER = ["at_risk", "active", "lapsed", "never_purchased", "unscored"]
FIRST_ORDER_MIN_CUSTOMERS = 30  # one-order buyers needed to estimate a never-buyer's first order (as Gamma-Gamma's minimum)
RAISES, LOWERS = "↑", "↓"  # the scorer's driver labels: "feature ↑" = its contribution raises this customer's risk
# an at-risk customer none of whose shown drivers raises risk: high because the base rate is (the buyers' mean
# churn probability is at least AT_RISK_PROBABILITY), else because the many smaller contributions not shown add up
BASE_RATE_WORDS = "most customers here do not buy again within 90 days (the base rate raises risk)"
SMALLER_FACTORS_WORDS = "smaller factors not listed together raise risk"

# a driver that stands for a group of features (model.DRIVER_GROUPS): the BG/NBD's P(alive), expected purchases
# and P(no purchase in 90 days) are said as one outlook, never as three views pulling opposite ways
DRIVER_WORDS = {"bgnbd_churn_90d": "BG/NBD repeat-purchase outlook (P(alive), expected purchases and P(no purchase "
                "in 90 days) together)"}
# windowed features whose value is empty (null or 0) when nothing happened in the window: the driver
# says what did not happen. (feature, condition on the features meaning "nothing in the window", words)
_NO_VISITS_30 = pl.col("sessions_30d").fill_null(0) == 0
_NO_PURCHASES_30 = pl.col("purchases_30d").fill_null(0) == 0
# the session-detail features (pages per visit, add-to-cart rate, ...) average the last 90 days' visits: the
# 30 days and the 60 before them, both counted in the features
_NO_VISITS_90 = _NO_VISITS_30 & (pl.col("sessions_prev_60d").fill_null(0) == 0)
EMPTY_WINDOW_WORDS = [
    ("sessions_30d", _NO_VISITS_30, "no visits in the last 30 days"),
    ("browsing_mean_30d", _NO_VISITS_30, "no visits in the last 30 days"),
    ("purchase_rate_30d", _NO_VISITS_30, "no visits in the last 30 days"),
    ("session_trend", _NO_VISITS_30, "no visits in the last 30 days"),
    ("browsing_mean_30d", pl.col("browsing_mean_30d").is_null(), "no browsing time recorded in the last 30 days"),
    ("purchases_30d", _NO_PURCHASES_30, "no purchases in the last 30 days"),
    ("revenue_30d", _NO_PURCHASES_30, "no purchases in the last 30 days"),
    ("aov_30d", _NO_PURCHASES_30, "no purchases in the last 30 days"),
    ("sessions_prev_60d", pl.col("sessions_prev_60d").fill_null(0) == 0, "no visits in the 60 days before that"),
    ("purchases_prev_60d", pl.col("purchases_prev_60d").fill_null(0) == 0, "no purchases in the 60 days before that"),
    ("revenue_prev_60d", pl.col("purchases_prev_60d").fill_null(0) == 0, "no purchases in the 60 days before that"),
    *[(feature, _NO_VISITS_90, "no visits in the last 90 days") for feature in SESSION_DETAIL_FEATURES],
    ("gap_mean_days", pl.col("gap_mean_days").is_null(), "only one purchase day so far (no typical gap yet)"),
    ("days_overdue", pl.col("gap_mean_days").is_null(), "only one purchase day so far (no typical gap yet)"),
    ("gap_std_days", pl.col("gap_std_days").is_null(), "too few purchases to know how regular they are"),
    ("browsing_mean_sec", pl.col("browsing_mean_sec").is_null(), "no browsing time recorded"),
    ("days_since_signup", pl.col("days_since_signup").is_null(), "no signup date known"),
    ("age", pl.col("age").is_null(), "age unknown"),
    ("gender", pl.col("gender").is_null(), "gender unknown"),
    ("location", pl.col("location").is_null(), "location unknown"),
]
OVERDUE = pl.col("days_since_last_purchase") - pl.col("gap_mean_days")  # = the feature days_overdue
# session counts that are order counts for a customer without a browsing session (orders, purchase logs)
ORDER_COUNTED_FEATURES = ("n_sessions", "days_since_last_session", "sessions_per_active_week", "sessions_30d",
                          "sessions_prev_60d", "session_trend")


def value_words(features: pl.DataFrame) -> list[tuple[str, pl.Expr, str]]:
    """Rules (feature or driver label, condition on the features, words) that say where the customer's own value
    stands, so the words never contradict the direction beside them. `days_overdue` (days since the last
    purchase minus their usual gap) is said as past / not yet past that gap; where the direction runs against
    that state (an XGBoost contribution can: "days past their gap (raises risk)" was read as a contradiction for
    a customer who was early), the words say how they compare with the other buyers' median when that explains
    it, else that the model counts their timing that way for this customer. Repeat purchases and days since the
    first purchase are compared with the medians BG/NBD's drivers use (`model.bgnbd_references`)."""
    typical = features.select(OVERDUE.median()).item() if {"days_since_last_purchase", "gap_mean_days"} <= set(
        features.columns) else None
    ref = bgnbd_references(features)
    overdue, late = OVERDUE, OVERDUE > 0
    not_yet, past = "not yet past their usual gap between purchases", "past their usual gap between purchases"
    repeats, first = pl.col("repeat_purchases"), pl.col("days_since_first_purchase")
    orders_only = pl.col("browsing_mean_sec").is_null() & (pl.col("n_sessions") == pl.col("n_purchases"))
    return [
        (f"days_overdue {RAISES}", late, past),
        (f"days_overdue {RAISES}", overdue > pl.lit(typical, pl.Float64), f"{not_yet}, but nearer to it than most customers"),
        (f"days_overdue {RAISES}", overdue.is_not_null(), f"{not_yet}, though the model counts this timing against them"),
        (f"days_overdue {LOWERS}", ~late, not_yet),
        (f"days_overdue {LOWERS}", overdue < pl.lit(typical, pl.Float64), f"{past}, but less so than most customers"),
        (f"days_overdue {LOWERS}", overdue.is_not_null(), f"{past}, though the model counts this timing in their favour"),
        ("repeat_purchases", repeats == 0, "no repeat purchase yet (one purchase day so far)"),
        ("repeat_purchases", repeats > pl.lit(ref["repeat_purchases"], pl.Float64), "more repeat purchases than most repeat buyers"),
        ("repeat_purchases", repeats < pl.lit(ref["repeat_purchases"], pl.Float64), "fewer repeat purchases than most repeat buyers"),
        ("days_since_first_purchase", first > pl.lit(ref["days_since_first_purchase"], pl.Float64),
         "first purchase longer ago than most customers'"),
        ("days_since_first_purchase", first < pl.lit(ref["days_since_first_purchase"], pl.Float64),
         "first purchase more recent than most customers'"),
        # the month itself, not "month of the last purchase": a season is only actionable when named
        *[("last_purchase_month", pl.col("last_purchase_month") == m, f"last purchase in {calendar.month_name[m]}")
          for m in range(1, 13)],
        # a customer known from orders or a purchase log only: each "visit" is an order (no browsing recorded)
        *[(feature, orders_only, FEATURE_WORDS[feature].replace("visits", "orders").replace("visit", "order"))
          for feature in ORDER_COUNTED_FEATURES if feature in FEATURE_WORDS],
    ]


# what the list reads from customer_features (a BTYD `expected_purchases_90d` is taken from the
# predictions or the features, whichever carries it)
FEATURE_INPUTS = sorted({"customer_id", "n_purchases", "aov", "tenure_days", "gap_mean_days",
                         "days_since_last_purchase", "days_since_last_session", "sessions_30d", "purchases_30d",
                         "sessions_prev_60d", "purchases_prev_60d", "browsing_mean_30d", "gap_std_days",
                         "browsing_mean_sec", "days_since_signup", "age", "gender", "location", "repeat_purchases",
                         "days_since_first_purchase", "last_purchase_month", "n_sessions"})


def probability_interval(p: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of the 95 % Wilson interval of a probability `p` estimated from `n` customers
    (NaN where n is 0 or p is missing). Arrays of the same shape."""
    frame = pl.DataFrame({"p": np.asarray(p, dtype=float), "n": np.asarray(n, dtype=float)}).with_columns(
        pl.col("p").fill_nan(None))
    ok = (pl.col("n") > 0) & pl.col("p").is_not_null()
    bounds = frame.select(low=pl.when(ok).then(wilson(pl.col("p") * pl.col("n"), pl.col("n"), -1)),
                          high=pl.when(ok).then(wilson(pl.col("p") * pl.col("n"), pl.col("n"), +1)))
    return bounds["low"].fill_null(np.nan).to_numpy(), bounds["high"].fill_null(np.nan).to_numpy()


def decile_of(score: np.ndarray, edges) -> np.ndarray:
    """Index of the bin (between consecutive `edges`, the outer ones open) each score falls in."""
    edges = np.asarray(edges)
    return np.clip(np.searchsorted(edges[1:-1], score, side="right"), 0, max(len(edges) - 2, 0))


def support_counts(raw: np.ndarray, support: dict) -> np.ndarray:
    """Customers in the calibration decile of each raw score (what its probability rests on)."""
    return np.asarray(support["n"], dtype=float)[decile_of(raw, support["edges"])]


def driver_words(features: pl.DataFrame, drivers: pl.Series) -> pl.Series:
    """Each row's drivers (list of "feature ↑/↓") in plain words joined by "; ", with the feature
    values in `features` (same rows, same order) deciding when an empty window is said as such.

    Vectorised for 500k rows: each distinct driver is worded once per rule outcome (a small table);
    per row, one small-integer column per worded feature says which rule fired, and each driver
    position is a gather from the table."""
    distinct = drivers.explode().drop_nulls().unique(maintain_order=True)
    present = set(distinct.to_list())
    # rules per driver label ("days_overdue ↑"): a rule given for a feature holds for both directions
    rules: dict[str, list[tuple[pl.Expr, str]]] = {}
    for key, condition, said in EMPTY_WINDOW_WORDS + value_words(features):
        labels = [key] if key[-1:] in (RAISES, LOWERS) else [f"{key} {RAISES}", f"{key} {LOWERS}"]
        for label in labels:  # only the drivers some row names
            if label in present and set(condition.meta.root_names()) <= set(features.columns):
                rules.setdefault(label, []).append((condition, said))
    width = 1 + max((len(r) for r in rules.values()), default=0)  # outcome 0 = no rule fired
    table, feature_of = [], []
    for driver in distinct.to_list():
        effect = " (raises risk)" if driver.endswith(RAISES) else " (lowers risk)"
        own = rules.get(driver, [])
        table += [_plain(driver)] + [said + effect for _, said in own] + [None] * (width - 1 - len(own))
        feature_of.append(list(rules).index(driver) if own else -1)
    if not table:
        return pl.Series("drivers", [None] * features.height, dtype=pl.String)
    table, feature_of = pl.Series(table, dtype=pl.String), np.asarray(feature_of)
    fired = features.select(
        pl.coalesce([pl.when(condition).then(pl.lit(j + 1, pl.UInt8)) for j, (condition, _) in enumerate(own)]
                    + [pl.lit(0, pl.UInt8)]).alias(label) for label, own in rules.items()
    ).to_numpy() if rules else np.zeros((features.height, 1), np.uint8)
    rows = np.arange(features.height)
    parts = []
    for i in range(int(drivers.list.len().max() or 0)):
        index = drivers.list.get(i, null_on_oob=True).replace_strict(distinct, range(distinct.len()),
                                                                         return_dtype=pl.Int64)
        d = index.fill_null(0).to_numpy()
        f = feature_of[d]
        outcome = np.where(f >= 0, fired[rows, np.maximum(f, 0)], 0)
        parts.append(table.gather(d * width + outcome).set(index.is_null(), None).rename(f"_{i}"))
    # two drivers of one empty window ("no visits in the last 30 days") are said once
    once = [pl.when(pl.any_horizontal(pl.col(p.name) == pl.col(q.name) for q in parts[:i])).then(None)
            .otherwise(pl.col(p.name)) if i else pl.col(p.name) for i, p in enumerate(parts)]
    return pl.DataFrame(parts).select(pl.concat_str(once, separator="; ", ignore_nulls=True).alias("drivers")).to_series()


def at_risk_drivers_first(drivers: pl.Expr, at_risk: pl.Expr, why: str = BASE_RATE_WORDS) -> pl.Expr:
    """The drivers (list of "feature ↑/↓", strongest first) of an at-risk customer with those that raise
    risk ("↑") first, each group keeping its strength order; other customers' drivers unchanged. An at-risk
    customer with drivers but none that raises risk gets `why` in front (BASE_RATE_WORDS where churn is
    common, else SMALLER_FACTORS_WORDS): saying only "lowers risk" would read as a contradiction of the
    status. The directions themselves are never changed."""
    raising_first = drivers.list.eval(pl.element().sort_by(~pl.element().str.ends_with(RAISES), maintain_order=True))
    none_raises = ~drivers.list.eval(pl.element().str.ends_with(RAISES)).list.any() & drivers.list.eval(
        pl.element().str.ends_with(LOWERS)).list.any()
    return (pl.when(at_risk & none_raises).then(pl.concat_list(pl.lit([why]), drivers))
            .when(at_risk).then(raising_first).otherwise(drivers))


def _plain(driver: str) -> str:
    """"days_since_last_purchase ↑" -> "days since the last purchase (raises risk)"; a driver without
    an arrow ("never purchased") passes unchanged."""
    if len(driver) < 3 or driver[-1] not in "↑↓":
        return driver
    name = driver[:-2]
    words = DRIVER_WORDS.get(name) or FEATURE_WORDS.get(name, name.replace("_", " "))
    return words + (" (raises risk)" if driver[-1] == "↑" else " (lowers risk)")


def first_order_values(frame: pl.DataFrame) -> pl.Series:
    """The order value of every buyer whose one order so far is their first (`n_purchases` 1, `aov` = that
    order): what a never-buyer who buys is worth on the evidence, rather than the population's spend per order."""
    one_order = (~pl.col("cold_start")) & (pl.col("n_purchases") == 1) & pl.col("aov").is_finite()
    return frame.filter(one_order)["aov"]


def customers_without_activity(predictions: pl.DataFrame, customers: pl.DataFrame) -> pl.DataFrame:
    """Rows (in `predictions`' columns) for the customers of the customers file (customer_id, signup_date)
    who are not in `predictions`: never visited nor bought by the as-of date, so nothing scores them
    (the never-buyers' scorer learns from visits). Listed all the same, never purchased, unscored, with the
    reason in `cold_start_reason`; an empty frame when every known customer is scored."""
    missing = customers.select("customer_id", "signup_date").join(predictions.select("customer_id"),
                                                                  on="customer_id", how="anti")
    as_of = predictions["as_of"][0] if predictions.height else None
    signed = pl.col("signup_date").dt.strftime("%Y-%m-%d")
    when = (pl.when(pl.col("signup_date").is_null()).then(pl.lit("no signup date"))
            .when(pl.col("signup_date") > pl.lit(as_of)).then(pl.lit("signed up ") + signed
                                                              + pl.lit(", after the data's as-of date"))
            .otherwise(pl.lit("signed up ") + signed))
    reason = pl.lit("not scored: known only from the customers file (") + when + pl.lit(
        "), no visit and no purchase yet, and the never-buyers' scorer learns from visits")
    return missing.select(
        "customer_id", churn_probability=pl.lit(None, pl.Float64), churn_probability_low=pl.lit(None, pl.Float64),
        churn_probability_high=pl.lit(None, pl.Float64), risk_tier=pl.lit("unscored"),
        top_drivers=pl.lit([], pl.List(pl.String)), cold_start_reason=reason, score_basis=pl.lit(NOT_SEEN_BASIS),
        model_version=pl.lit(predictions["model_version"][0] if predictions.height else "none"),
        as_of=pl.lit(as_of, pl.Date), cold_start=pl.lit(True))


def own_aov_weight_words(gg: dict, orders: pl.Series) -> str:
    """How much a buyer's own AOV counts in their Gamma-Gamma spend per order, at the median order count x:
    E[spend | x, AOV] = w x AOV + (1 - w) x population mean, w = p x / (p x + q - 1) (Fader & Hardie 2013).
    Near 0, the data show no spend differences between customers beyond chance: everyone gets the mean."""
    x = float(orders.drop_nulls().median() or 1.0)
    weight = gg["p"] * x / (gg["p"] * x + gg["q"] - 1)
    if weight < 0.01:
        return (f"no spend differences between customers beyond chance (own AOV weight {weight:.1%} at {x:g} "
                "orders): every buyer gets the population mean")
    return f"a buyer with {x:g} orders: {weight:.0%} own AOV, {1 - weight:.0%} population mean"


def build_risk_list(predictions: pl.DataFrame, features: pl.DataFrame,
                    customers: pl.DataFrame | None = None) -> tuple[pl.DataFrame, dict]:
    """(the ordered list, how its value was estimated). `predictions` are rows of `churn_predictions`,
    `features` the same customers' `customer_features` (at least `FEATURE_INPUTS` that exist);
    `customers` (customer_id, signup_date: the clean customers file) adds every known customer that has
    no prediction, unscored (`customers_without_activity`)."""
    if customers is not None and customers.height:
        extra = customers_without_activity(predictions, customers)
        predictions = pl.concat([predictions, extra.select(c for c in predictions.columns if c in extra.columns)],
                                how="diagonal_relaxed")
    wanted = [c for c in FEATURE_INPUTS + ["expected_purchases_90d", "bgnbd_churn_90d"]
              if c in features.columns and (c == "customer_id" or c not in predictions.columns)]
    frame = predictions.join(features.select(wanted), on="customer_id", how="left", maintain_order="left")
    # the status, value and order follow the probability the list shows (4 decimals): 0.49996 is listed as 0.5,
    # so it is at_risk, never "0.5 and not at risk"
    frame = frame.with_columns(pl.col("churn_probability").round(4))
    buyers = ~pl.col("cold_start")
    bought = frame.filter(buyers)
    gg = fit_gamma_gamma(bought["n_purchases"].fill_null(0).to_numpy(), bought["aov"].fill_null(0).to_numpy())
    median_gap = typical_gap(frame)
    btyd = {"expected_purchases_90d", "bgnbd_churn_90d"} <= set(frame.columns) and \
        frame["expected_purchases_90d"].null_count() < frame.height
    p = pl.col("churn_probability")
    own_rate = HORIZON_DAYS * pl.col("n_purchases") / pl.col("tenure_days").clip(lower_bound=HORIZON_DAYS)
    # purchases of a customer who does buy: BG/NBD's E[N | N > 0] = E[N] / P(N > 0), else the own past rate
    per_buyer = pl.coalesce(pl.when(pl.col("bgnbd_churn_90d") < 1 - 1e-9).then(
        pl.col("expected_purchases_90d") / (1 - pl.col("bgnbd_churn_90d"))), own_rate) if btyd else own_rate
    purchases = (1 - p) * pl.max_horizontal(pl.lit(1.0), per_buyer)
    first_orders = first_order_values(frame)
    first_order = float(first_orders.mean()) if first_orders.len() >= FIRST_ORDER_MIN_CUSTOMERS else None
    spend = pl.when(pl.col("cold_start")).then(pl.lit(first_order, pl.Float64)).otherwise(
        spend_per_order(gg, pl.col("n_purchases"), pl.col("aov")))
    frame = frame.with_columns(status=churn_status(frame))
    scored = bought["churn_probability"].drop_nulls()
    why = BASE_RATE_WORDS if scored.len() and scored.mean() >= AT_RISK_PROBABILITY else SMALLER_FACTORS_WORDS
    # every customer listed as likely to churn (at_risk, and lapsed ones scored so too) has a reason in front
    likely = p >= AT_RISK_PROBABILITY
    ordered = frame.select(at_risk_drivers_first(pl.col("top_drivers"), likely, why)).to_series()
    listed = frame.with_columns(
        expected_purchases_90d=pl.when(pl.col("cold_start")).then(1 - p).otherwise(purchases),
        spend_per_order=spend,
        drivers=driver_words(frame, ordered),
    ).with_columns(
        expected_value_90d=(pl.col("expected_purchases_90d") * pl.col("spend_per_order")).round(2),
        spend_per_order=pl.col("spend_per_order").round(2),
        expected_purchases_90d=pl.col("expected_purchases_90d").round(2),
    ).with_columns(value_at_risk=(p * pl.col("expected_value_90d")).round(2))
    listed = listed.with_columns(_section=pl.col("status").replace_strict(STATUS_ORDER, range(len(STATUS_ORDER))))
    keys = ["_section", "value_at_risk", "expected_value_90d", "days_since_last_purchase", "days_since_last_session"]
    descending = [False, True, True, False, False]
    listed = listed.sort(keys, descending=descending, nulls_last=True, maintain_order=True)
    # rows equal on every key share the rank of the first of them (a tie shown, not hidden by an id order)
    starts = pl.any_horizontal(pl.col(k).ne_missing(pl.col(k).shift(1)) for k in keys) | (pl.int_range(pl.len()) == 0)
    listed = listed.with_columns(rank=pl.when(starts).then(pl.int_range(1, pl.len() + 1)).forward_fill())
    out = listed.select(
        "rank", "customer_id", "status", "value_at_risk", "expected_value_90d", "expected_purchases_90d",
        "spend_per_order", "churn_probability", pl.col("churn_probability_low").round(4),
        pl.col("churn_probability_high").round(4),
        # BG/NBD's P(alive) only beside a churn score that ranks (an unscored row's, ~1 in a young shop, was never
        # checked; under no skill BG/NBD ranked no better than chance) and for repeat buyers (BG/NBD's x > 0): a
        # one-purchase buyer's is 1 by the model's construction, beside churn ~0.9
        (pl.when(p.is_not_null() & (pl.col("risk_tier") != NO_SKILL_TIER) & (pl.col("repeat_purchases") > 0))
         .then(pl.col("p_alive").round(4))
         if {"p_alive", "repeat_purchases"} <= set(frame.columns) else pl.lit(None, pl.Float64)).alias("p_alive"),
        "risk_tier", "score_basis", "drivers", "cold_start_reason",
        "days_since_last_purchase", pl.col("days_since_last_session").alias("days_since_last_visit"),
        "model_version", "as_of", "cold_start")
    how = {"expected_purchases": "(1 - churn probability) x BG/NBD's expected purchases of a customer who buys, "
           "E[N] / P(N > 0) (at least 1); the own purchase rate where it has none" if btyd else "own purchase rate: (1 - churn probability) x max(1, 90 x purchases / max(days since first seen, 90))",
           "spend_per_order": f"Gamma-Gamma (p={gg['p']:.3g}, q={gg['q']:.3g}, gamma={gg['gamma']:.3g}; "
           f"population mean {gg['population_mean']:.2f} per order, fitted on {gg['customers']} customers); "
           + own_aov_weight_words(gg, bought["n_purchases"]) if gg
           else "each customer's own AOV (too few buyers with a positive AOV to fit Gamma-Gamma)",
           "never_buyers_spend_per_order": f"mean first order {first_order:.2f} of {first_orders.len()} customers with "
           "one order so far" if first_order is not None else f"unknown: {first_orders.len()} customers with one order "
           f"so far, {FIRST_ORDER_MIN_CUSTOMERS} needed (never-buyers' value left empty)",
           "typical_gap_for_single_buyers_days": median_gap}
    return out, how
