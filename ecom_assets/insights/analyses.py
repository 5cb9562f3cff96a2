"""Pure functions behind the insight assets: frames in, frames (and small dicts) out."""

import hashlib
from datetime import timedelta

import numpy as np
import polars as pl

from ecom_assets.churn.status import AT_RISK_PROBABILITY, LAPSED_GAP_MULTIPLE, LAPSED_MIN_DAYS, churn_status
from ecom_assets.insights.stats import (MIN_TESTED_TOGETHER, TESTED_CELLS, Z95, benjamini_hochberg,
                                        cooccurrence_test, two_proportion_p, wilson)
from ecom_assets.schemas import CONVERSION_COLUMNS, UNKNOWN_PRODUCT, browsing_session, converted

WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

# --- segments -------------------------------------------------------------------------------
SEGMENT_ACTIONS = {
    "new": "Onboarding series: second-purchase incentive within 30 days of the first visit.",
    "active_loyal": "Loyalty perks and early access; ask for reviews and referrals.",
    "high_ltv": "VIP treatment: personal account manager, premium bundles, no discounting.",
    "at_risk": "Win-back experiment (see winback_assignment): time-limited offer plus a reminder of favourites; "
    "churn_risk_list says who is worth it and why.",
    "lapsed": "Win-back: one reactivation offer on the favourite category, then a quarterly reminder; suppress from "
    "paid retargeting.",
    "hibernating": "Low-cost reactivation email once per quarter; suppress from paid retargeting.",
    "browsers": "Convert first purchase: cart reminders and a first-order incentive on the favourite category.",
    "occasional": "Seasonal campaigns aimed at the favourite category.",
}
SEGMENT_RULES = (
    "lapsed and at_risk are the churn risk list's status, one definition for both (churn.risk_list.churn_status): "
    f"lapsed = no purchase for more than {LAPSED_GAP_MULTIPLE:g} x the customer's typical gap (one-purchase buyers: "
    f"the repeat buyers' median gap) and over {LAPSED_MIN_DAYS} days; at_risk = churn probability >= "
    f"{AT_RISK_PROBABILITY:g}, not lapsed. Then new: first seen <= 60 days ago; hibernating: never purchased and no "
    "visit for 180 days; browsers: never purchased; high_ltv: revenue in the top 20 % of purchasers; active_loyal: "
    ">= 2 purchases and one in the last 90 days; occasional: the rest."
)


SEGMENT_FEATURES = ["customer_id", "as_of", "cold_start", "tenure_days", "days_since_last_purchase",
                    "days_since_last_session", "n_purchases", "revenue", "favourite_category", "gap_mean_days"]


def customer_segments(features: pl.DataFrame, predictions: pl.DataFrame) -> pl.DataFrame:
    """One row per customer of `features` with its `segment` (SEGMENT_RULES, first match wins) and `action`."""
    frame = features.join(predictions.select("customer_id", "churn_probability"), on="customer_id", how="left")
    frame = frame.with_columns(_status=churn_status(frame))
    purchasers = frame.filter(~pl.col("cold_start"))["revenue"]
    # without purchasers there is no 80th percentile (and no one to call high_ltv)
    revenue_p80 = purchasers.quantile(0.8) if purchasers.len() else float("inf")
    last_buy, status = pl.col("days_since_last_purchase"), pl.col("_status")
    segment = (
        pl.when(status == "lapsed").then(pl.lit("lapsed"))
        .when(status == "at_risk").then(pl.lit("at_risk"))
        .when(pl.col("tenure_days") <= 60).then(pl.lit("new"))
        .when(pl.col("cold_start") & (pl.col("days_since_last_session") > 180)).then(pl.lit("hibernating"))
        .when(pl.col("cold_start")).then(pl.lit("browsers"))
        .when(pl.col("revenue") >= revenue_p80).then(pl.lit("high_ltv"))
        .when((pl.col("n_purchases") >= 2) & (last_buy <= 90)).then(pl.lit("active_loyal"))
        .otherwise(pl.lit("occasional"))
    )
    return frame.select(
        "customer_id", segment.alias("segment"), "churn_probability", "revenue", "n_purchases",
        "days_since_last_purchase", "favourite_category", "as_of",
    ).with_columns(action=pl.col("segment").replace_strict(SEGMENT_ACTIONS, return_dtype=pl.String))


def segment_summary(segments: pl.DataFrame) -> pl.DataFrame:
    total_revenue = segments["revenue"].sum() or 1.0
    return segments.group_by("segment").agg(
        customers=pl.len(), revenue=pl.col("revenue").sum(), mean_churn_probability=pl.col("churn_probability").mean(),
    ).with_columns(
        share=pl.col("customers") / pl.col("customers").sum(), revenue_share=pl.col("revenue") / total_revenue,
        action=pl.col("segment").replace_strict(SEGMENT_ACTIONS, return_dtype=pl.String),
    ).sort("revenue", descending=True)


# --- funnel ---------------------------------------------------------------------------------
def is_category(column: str = "product_viewed") -> pl.Expr:
    """A real product category: not missing and not the `unknown` placeholder of unreadable values."""
    return pl.col(column).is_not_null() & (pl.col(column) != UNKNOWN_PRODUCT)


FUNNEL_SESSION_COLUMNS = ["product_viewed", "purchase_made", "purchase_amount", *CONVERSION_COLUMNS]


def product_funnel(sessions: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Views -> cart -> purchase per viewed category (`funnel_rates` of the session counts). The funnel counts
    browsing sessions only (`browsing_session`; a purchase is `converted`): an order is a purchased session without
    a visit and would count as viewed and bought; `revenue` is every session's purchase_amount, orders included.
    One lazy group-by: only the category counts are ever held in memory."""
    sessions = sessions.lazy()
    columns = sessions.collect_schema().names()
    browsed = browsing_session(columns)
    cart, buy = pl.col("added_to_cart").filter(browsed), converted(columns).filter(browsed)
    counts = sessions.group_by("product_viewed").agg(
        views=browsed.sum(), cart_known=cart.is_not_null().sum(), carts=cart.sum(), purchases=buy.sum(),
        purchases_after_cart=(cart & buy).sum(), purchases_without_cart=(cart.not_() & buy).sum(),
        revenue=pl.col("purchase_amount").sum(),
    ).collect()
    return funnel_rates(counts.rename({"product_viewed": "category"}), "category")


def funnel_rates(counts: pl.DataFrame, key: str) -> pl.DataFrame:
    """Rates and leakage ranking from funnel counts, one row per `key` value.

    `counts` columns: views, cart_known (views whose cart flag is known), carts, purchases,
    purchases_after_cart, purchases_without_cart (+ any others, kept). Every rate is a share of the
    same sessions, in [0, 1], with a 95 % Wilson interval (null when there is nothing to divide):
    conversion = purchases / views, view_to_cart = carts / cart_known, cart_to_purchase =
    purchases_after_cart / carts (purchases without a cart stay in their own column). Without any
    known cart flag (an export without `added_to_cart`) the cart columns are null. Leakage: a real
    category whose conversion is below the others' (two-proportion z-test, Benjamini-Hochberg q < 0.05),
    ranked by purchases lost against the overall rate; `unknown` and missing values are never ranked.
    """
    has_cart = counts["cart_known"].sum() > 0
    cart_columns = ["carts", "purchases_after_cart", "purchases_without_cart"]
    funnel = counts.with_columns(
        [pl.col(c) if has_cart else pl.lit(None, pl.UInt32).alias(c) for c in cart_columns],
    ).with_columns(
        *_rate("conversion", pl.col("purchases"), pl.col("views")),
        *_rate("view_to_cart", pl.col("carts"), pl.col("cart_known")),
        *_rate("cart_to_purchase", pl.col("purchases_after_cart"), pl.col("carts")),
    )
    real = funnel.select(is_category(key)).to_series()
    views, buys = funnel["views"].filter(real), funnel["purchases"].filter(real)
    overall = buys.sum() / max(views.sum(), 1)
    p = two_proportion_p(buys, views, buys.sum() - buys, views.sum() - views)
    ranked = funnel.filter(real).with_columns(
        p_value=pl.Series(p, dtype=pl.Float64), q_value=pl.Series(benjamini_hochberg(p), dtype=pl.Float64),
        # purchases lost against the overall rate: where the view -> purchase step leaks most
        lost_purchases=(pl.lit(overall) - pl.col("conversion")) * pl.col("views"),
    ).with_columns(
        leaking=(pl.col("q_value") < 0.05) & (pl.col("conversion") < overall),
    ).sort(["leaking", "lost_purchases"], descending=True).with_row_index("leakage_rank", offset=1)
    unranked = funnel.filter(~real).with_columns(leaking=pl.lit(False))
    return pl.concat([ranked.with_columns(pl.col("leakage_rank").cast(pl.Int64)), unranked], how="diagonal_relaxed")


def _rate(name: str, successes: pl.Expr, trials: pl.Expr) -> list[pl.Expr]:
    defined = trials > 0
    return [pl.when(defined).then(successes / trials).alias(name),
            pl.when(defined).then(wilson(successes, trials, -1)).alias(f"{name}_low"),
            pl.when(defined).then(wilson(successes, trials, +1)).alias(f"{name}_high")]


# --- trends and seasonality -------------------------------------------------------------------
DAILY_SESSION_COLUMNS = ["customer_id", "session_date", "purchase_made", "purchase_amount", *CONVERSION_COLUMNS]


def _conversion() -> pl.Expr:
    """Converted browsing sessions per browsing session; null without a browsing session (orders only)."""
    return pl.col("converted") / pl.col("browsing_sessions").replace(0, None)


def daily_sales(sessions: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Sessions, browsing sessions (`browsing_session`) and those of them that `converted`, purchases, revenue and
    buyers per day (one lazy group-by over the session facts); conversion = converted / browsing sessions (an
    order is a purchase, not a visit: null on a day without a browsing session), AOV = revenue / purchases."""
    sessions = sessions.lazy()
    columns = sessions.collect_schema().names()
    browsed = browsing_session(columns)
    return sessions.group_by("session_date").agg(
        sessions=pl.len(), browsing_sessions=browsed.sum(), converted=(browsed & converted(columns)).sum(),
        purchases=pl.col("purchase_made").sum(), revenue=pl.col("purchase_amount").sum(),
        buyers=pl.col("customer_id").filter(pl.col("purchase_made")).n_unique(),
    ).sort("session_date").collect().with_columns(
        conversion=_conversion(),
        aov=pl.col("revenue") / pl.col("purchases").replace(0, None),
    )


def daily_returns(returns: pl.LazyFrame | pl.DataFrame, refunds: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Per date (`session_date`, the UTC date of order_time): `returns` = the amount of every clean_returns
    line, `refunds` = the money given back on bought orders, each once (`ingest.orders.order_refunds`: an
    order's `refunded_amount`, else its `is_refund` lines), the only money net revenue subtracts (lines of a
    cancelled / refunded / unpaid order never were revenue)."""
    day = pl.col("order_time").dt.date().alias("session_date")
    returned, refunded = pl.collect_all([
        returns.lazy().group_by(day).agg(returns=pl.col("line_amount").abs().sum()),
        refunds.lazy().group_by(day).agg(pl.col("refunds").sum())])
    return returned.join(refunded, on="session_date", how="full", coalesce=True).with_columns(
        pl.col("returns", "refunds").fill_null(0.0))


def rollup(daily: pl.DataFrame, every: str) -> pl.DataFrame:
    """Daily rows -> one row per `every` period (polars duration, e.g. "1w", "1mo"): the counts and money
    summed (`returns`, `refunds`, `net_revenue` too when the daily rows carry them), ratios recomputed."""
    money = [c for c in ("returns", "refunds", "net_revenue") if c in daily.columns]
    return daily.group_by_dynamic("session_date", every=every).agg(
        pl.col("sessions", "browsing_sessions", "converted", "purchases", "revenue", "buyers", *money).sum(),
    ).with_columns(conversion=_conversion(),
                   aov=pl.col("revenue") / pl.col("purchases").replace(0, None))


def _design(daily: pl.DataFrame, extra: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, list[str]]:
    """Intercept, smooth trend (1st-3rd order), weekday and month dummies. The reference level is the
    first weekday / month that occurs; a level that never occurs (a shop closed on Saturdays, a log
    without January) gets no column, so the matrix keeps full rank."""
    d = daily["session_date"]
    t = (d - d.min()).dt.total_days().to_numpy().astype(float)
    t = (t - t.mean()) / max(t.std(), 1.0)
    cols, names = [np.ones_like(t), t, t**2, t**3], ["const", "t", "t2", "t3"]
    for prefix, levels in (("wd", d.dt.weekday().to_numpy()), ("m", d.dt.month().to_numpy())):
        for level in np.unique(levels)[1:]:
            cols.append((levels == level).astype(float))
            names.append(f"{prefix}{level}")
    for name, values in (extra or {}).items():
        cols.append(values.astype(float))
        names.append(name)
    return np.column_stack(cols), names


def seasonality(daily: pl.DataFrame) -> pl.DataFrame:
    """Weekday and month indices of daily sessions (log-linear OLS with a smooth trend), 95 % CIs.
    Index 1.0 = the average day; the reference level's index comes from the normalisation. A weekday
    or month without any day in the data has no row (no index can be estimated for it)."""
    import statsmodels.api as sm

    if daily.height < 60:
        return pl.DataFrame(schema={"kind": pl.String, "level": pl.String, "index": pl.Float64,
                                    "low": pl.Float64, "high": pl.Float64})
    x, names = _design(daily)
    fit = sm.OLS(np.log(daily["sessions"].to_numpy().astype(float)), x).fit()
    rows = []
    d = daily["session_date"]
    for kind, prefix, labels, first in (("weekday", "wd", WEEKDAYS, int(d.dt.weekday().min())),
                                        ("month", "m", MONTHS, int(d.dt.month().min()))):
        effects = {first: (0.0, 0.0)}
        for i, name in enumerate(names):
            if name.startswith(prefix) and name[len(prefix):].isdigit():
                effects[int(name[len(prefix):])] = (fit.params[i], fit.bse[i])
        centre = np.mean([e for e, _ in effects.values()])
        for level, (effect, se) in sorted(effects.items()):
            rows.append({"kind": kind, "level": labels[level - 1], "index": float(np.exp(effect - centre)),
                         "low": float(np.exp(effect - centre - Z95 * se)), "high": float(np.exp(effect - centre + Z95 * se))})
    return pl.DataFrame(rows)


def _glm_effects(counts: np.ndarray, exposure: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coefficients, standard errors, p-values) of a quasi-Poisson GLM of `counts` with log(`exposure`) offset
    (statsmodels, Pearson chi2 scale)."""
    import statsmodels.api as sm

    fit = sm.GLM(counts, x, family=sm.families.Poisson(), offset=np.log(exposure)).fit(scale="X2")
    return fit.params, fit.bse, fit.pvalues


def campaign_lift(daily: pl.DataFrame, campaigns: pl.DataFrame) -> pl.DataFrame:
    """Conversion and revenue-per-session ratio inside each campaign window vs the same weekday/season
    baseline: quasi-Poisson GLMs of the daily converted visits with log(visits) offset (`daily_sales`'
    `converted` / `browsing_sessions`: an order is a purchase, not a visit, so a shop dropping orders beside
    its sessions or events would dilute the base), fitted on the days with a visit, and of daily revenue with
    log(sessions) offset. `daily`: `daily_sales` rows (a frame without the visit columns counts every session
    as a visit); at least 60 days, else an empty table; conversion columns null with fewer than 60 days of
    visits (orders-only data has none)."""
    if campaigns.is_empty() or daily.height < 60:
        return pl.DataFrame(schema={"campaign_id": pl.String, "name": pl.String, "start_date": pl.Date,
                                    "end_date": pl.Date, "days": pl.Int64, "conversion_lift": pl.Float64,
                                    "conversion_lift_low": pl.Float64, "conversion_lift_high": pl.Float64,
                                    "p_value": pl.Float64, "revenue_per_session_lift": pl.Float64,
                                    "revenue_lift_low": pl.Float64, "revenue_lift_high": pl.Float64})
    dates = daily["session_date"]
    windows = {row["campaign_id"]: ((dates >= row["start_date"]) & (dates <= row["end_date"])).to_numpy()
               for row in campaigns.iter_rows(named=True)}
    x, names = _design(daily, {f"c_{k}": v for k, v in windows.items()})
    visits = (daily["browsing_sessions"] if "browsing_sessions" in daily.columns else daily["sessions"]).to_numpy()
    converted = (daily["converted"] if "converted" in daily.columns else daily["purchases"]).to_numpy()
    visited = visits > 0
    conv = _glm_effects(converted[visited], visits[visited].astype(float), x[visited]) if visited.sum() >= 60 else None
    rev = _glm_effects(daily["revenue"].to_numpy(), daily["sessions"].to_numpy().astype(float), x)
    rows = []
    for row in campaigns.iter_rows(named=True):
        i = names.index(f"c_{row['campaign_id']}")
        days = int(windows[row["campaign_id"]].sum())
        rows.append({
            "campaign_id": row["campaign_id"], "name": row["name"], "start_date": row["start_date"],
            "end_date": row["end_date"], "days": days,
            **({"conversion_lift": float(np.exp(conv[0][i])),
                "conversion_lift_low": float(np.exp(conv[0][i] - Z95 * conv[1][i])),
                "conversion_lift_high": float(np.exp(conv[0][i] + Z95 * conv[1][i])),
                "p_value": float(conv[2][i])} if conv is not None else
               dict.fromkeys(("conversion_lift", "conversion_lift_low", "conversion_lift_high", "p_value"))),
            "revenue_per_session_lift": float(np.exp(rev[0][i])),
            "revenue_lift_low": float(np.exp(rev[0][i] - Z95 * rev[1][i])),
            "revenue_lift_high": float(np.exp(rev[0][i] + Z95 * rev[1][i])),
        })
    return pl.DataFrame(rows, schema_overrides={c: pl.Float64 for c in ("conversion_lift", "conversion_lift_low",
                                                                         "conversion_lift_high", "p_value")})


# --- cohorts --------------------------------------------------------------------------------
PURCHASE_SESSION_COLUMNS = ["customer_id", "session_date", "product_viewed", "purchase_made", "purchase_amount"]


def purchases(sessions: pl.LazyFrame | pl.DataFrame, *columns: str) -> pl.DataFrame:
    """The purchase sessions' `columns`, filtered in the scan: the views (most rows) are never loaded."""
    return sessions.lazy().filter(pl.col("purchase_made")).select(columns).collect()


def cohort_metrics(sessions: pl.LazyFrame | pl.DataFrame, customers: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per signup-month and first-purchase-month cohort: size, AOV, revenue per customer;
    retention triangle: share of a first-purchase cohort buying again k months later)."""
    buys = purchases(sessions, "customer_id", "session_date", "purchase_amount")
    first = buys.group_by("customer_id").agg(first_purchase=pl.col("session_date").min())
    per_customer = buys.group_by("customer_id").agg(revenue=pl.col("purchase_amount").sum(), orders=pl.len())
    signup = customers.select("customer_id", cohort=pl.col("signup_date").dt.truncate("1mo")).drop_nulls()
    by_signup = signup.join(per_customer, on="customer_id", how="left").group_by("cohort").agg(
        customers=pl.len(), buyers=pl.col("orders").is_not_null().sum(), revenue=pl.col("revenue").sum(),
        orders=pl.col("orders").sum(),
    ).with_columns(kind=pl.lit("signup_month"))
    by_first = first.with_columns(cohort=pl.col("first_purchase").dt.truncate("1mo")).join(
        per_customer, on="customer_id").group_by("cohort").agg(
        customers=pl.len(), buyers=pl.len(), revenue=pl.col("revenue").sum(), orders=pl.col("orders").sum(),
    ).with_columns(kind=pl.lit("first_purchase_month"))
    cohorts = pl.concat([by_signup, by_first], how="vertical_relaxed").with_columns(
        aov=pl.col("revenue") / pl.col("orders").replace(0, None),
        revenue_per_customer=pl.col("revenue") / pl.col("customers"),
    ).sort("kind", "cohort")
    months = buys.join(first, on="customer_id").with_columns(
        cohort=pl.col("first_purchase").dt.truncate("1mo"),
        months_since=((pl.col("session_date").dt.year() - pl.col("first_purchase").dt.year()) * 12
                      + pl.col("session_date").dt.month() - pl.col("first_purchase").dt.month()),
    ).select("customer_id", "cohort", "months_since").unique()
    size = first.with_columns(cohort=pl.col("first_purchase").dt.truncate("1mo")).group_by("cohort").agg(size=pl.len())
    triangle = months.group_by("cohort", "months_since").agg(active=pl.len()).join(size, on="cohort").with_columns(
        retention=pl.col("active") / pl.col("size")).sort("cohort", "months_since")
    return cohorts, triangle


# --- cross-sell -----------------------------------------------------------------------------
CROSS_SELL_COLUMNS = {"antecedent": pl.String, "consequent": pl.String, "customers": pl.Int64, "support": pl.Float64,
                      "confidence": pl.Float64, "confidence_reverse": pl.Float64, "lift": pl.Float64,
                      "adjusted_lift": pl.Float64, "z": pl.Float64, "p_value": pl.Float64, "q_value": pl.Float64,
                      "significant": pl.Boolean}


def cross_sell_rules(sessions: pl.LazyFrame | pl.DataFrame, min_customers: int = MIN_TESTED_TOGETHER, seed: int = 0,
                     tested_cells: int = TESTED_CELLS) -> tuple[pl.DataFrame, dict]:
    """(every category pair bought by the same customers, how it was tested).

    `stats.cooccurrence_test` on the binary customer × category matrix (did the customer ever buy in the
    category): a curveball null that keeps each customer's number of distinct categories and each
    category's number of buyers exactly, one-sided p per pair (Pearson III tail of the null's mean, sd and
    skewness; z reported), Benjamini-Hochberg q over the pairs bought
    together by >= `min_customers` customers; `significant` = q < 0.05 and observed above the null mean.
    At most stats.MAX_ITEMS most-bought categories; beyond `tested_cells` the null runs on a hash-sample of
    customers (customers, support, confidence and lift always use every customer). Deterministic given `seed`.
    Shapes: one row per unordered pair (antecedent < consequent); support = customers / customers buying
    any tested category; `adjusted_lift` = observed / null mean.
    """
    owned = purchases(sessions, "customer_id", "product_viewed").filter(is_category())
    pairs, how = cooccurrence_test(owned, "customer_id", "product_viewed", "customers", min_together=min_customers,
                                   tested_cells=tested_cells, seed=seed)
    if pairs.is_empty():
        return _empty_rules(), {"state": "fewer than two categories bought"}
    rules = pairs.select(
        antecedent="item_a", consequent="item_b", customers="together",
        support=pl.col("together") / pl.col("rows"), confidence=pl.col("together") / pl.col("rows_a"),
        confidence_reverse=pl.col("together") / pl.col("rows_b"), lift="lift", adjusted_lift="adjusted_lift",
        z="z", p_value="p_value", q_value="q_value", significant="significant",
    ).sort(["significant", "adjusted_lift"], descending=True, nulls_last=True)
    return rules, {("categories" if k == "items" else k): v for k, v in how.items()}


def cross_sell_export(rules: pl.DataFrame) -> pl.DataFrame:
    """The findings a marketer acts on: significant rules only, highest lift first."""
    return rules.filter(pl.col("significant")).sort("lift", descending=True)


def _empty_rules() -> pl.DataFrame:
    return pl.DataFrame(schema=CROSS_SELL_COLUMNS)


# --- early signals of top-5 % customers --------------------------------------------------------
EARLY_DAYS = 30
EARLY_SIGNALS = ["sessions_first_30d", "purchases_first_30d", "revenue_first_30d", "first_order_value",
                 "browsing_mean_first_30d", "categories_first_30d"]


EARLY_SESSION_COLUMNS = ["customer_id", "session_date", "purchase_made", "purchase_amount", "browsing_time_sec",
                         "product_viewed"]


def early_signals_frame(sessions: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Per customer seen >= 30 days before the last date: first-30-day signals and top-5 % flag.

    Two lazy passes: each customer's first session, first purchase date and total revenue; then
    only the rows inside the customer's first 30 days (or on the first purchase day) are joined
    and aggregated. A window relative to each group's own minimum inside one aggregation made
    polars hold every customer's rows at once (1.6 GiB vs 0.7 GiB at 10M sessions). The join keeps
    the sessions' (date) order, so among purchases on the first purchase day the first in the
    export is the first order.
    """
    sessions = sessions.lazy().select(EARLY_SESSION_COLUMNS)  # a lazy scan: the 10M-row table is never held whole
    last = sessions.select(pl.col("session_date").max()).collect().item()
    date, bought, amount = pl.col("session_date"), pl.col("purchase_made"), pl.col("purchase_amount")
    firsts = sessions.group_by("customer_id").agg(
        first_seen=date.min(), first_purchase=date.filter(bought).min(), revenue=amount.sum()).collect()
    early = date < pl.col("first_seen") + timedelta(days=EARLY_DAYS)
    first_order = bought & (date == pl.col("first_purchase"))
    signals = (
        sessions.join(firsts.lazy().drop("revenue"), on="customer_id", maintain_order="left")
        .filter(early | first_order)
        .group_by("customer_id").agg(
            sessions_first_30d=early.sum().cast(pl.Float64),
            purchases_first_30d=(early & bought).sum().cast(pl.Float64),
            revenue_first_30d=amount.filter(early).sum(),
            first_order_value=amount.filter(first_order).first().fill_null(0.0),
            browsing_mean_first_30d=pl.col("browsing_time_sec").filter(early).mean(),
            categories_first_30d=pl.col("product_viewed").filter(early).n_unique().cast(pl.Float64),
        ).collect()
    )
    frame = firsts.join(signals, on="customer_id").select("customer_id", "first_seen", "revenue", *EARLY_SIGNALS)
    if last is None:
        return frame.drop("first_seen").with_columns(top5=pl.lit(False))
    frame = frame.filter(pl.col("first_seen") <= last - timedelta(days=EARLY_DAYS)).drop("first_seen")
    threshold = frame["revenue"].quantile(0.95) if frame.height else 0.0
    # a customer without revenue is never a top spender (with under 5 % buyers the 95th percentile is 0)
    return frame.with_columns(top5=(pl.col("revenue") >= threshold) & (pl.col("revenue") > 0)).sort("customer_id")


MIN_EARLY_CUSTOMERS, MIN_CLASS_CUSTOMERS = 200, 10


def high_value_early_signals(sessions: pl.LazyFrame | pl.DataFrame, seed: int = 7) -> tuple[pl.DataFrame, dict]:
    """(per-signal AUC, {model AUC / precision@5 % on held-out customers}) — only first-30-day data.

    Without MIN_EARLY_CUSTOMERS customers past their first 30 days, or MIN_CLASS_CUSTOMERS top-5 % and
    other customers in both the fitting and the held-out part (a shop without purchases has no top
    spender), the table is empty and the dict is {"state": why} — an AUC or a logistic fit needs both classes.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    frame = early_signals_frame(sessions)
    y = frame["top5"].to_numpy()
    test = (frame["customer_id"].hash(seed=seed) % 10 < 3).to_numpy()  # 30 % of customers held out
    state = None
    if frame.height < MIN_EARLY_CUSTOMERS:
        state = f"too few customers past their first 30 days ({frame.height}; {MIN_EARLY_CUSTOMERS} needed)"
    else:
        for part, rows in (("fitting", ~test), ("held-out", test)):
            top = int(y[rows].sum())
            if min(top, int(rows.sum()) - top) < MIN_CLASS_CUSTOMERS:
                state = (f"too few top-5 % spenders to learn from: the {part} customers have {top} top-5 % "
                         f"and {int(rows.sum()) - top} others; {MIN_CLASS_CUSTOMERS} of each are needed")
                break
    if state:
        return pl.DataFrame(schema={"signal": pl.String, "auc": pl.Float64, "top5_median": pl.Float64,
                                    "others_median": pl.Float64}), {"state": state}
    x = np.log1p(np.nan_to_num(frame.select(EARLY_SIGNALS).to_numpy().astype(float), nan=0.0))
    signals = pl.DataFrame([{
        "signal": name, "auc": float(roc_auc_score(y, x[:, k])),
        "top5_median": float(np.median(frame[name].fill_null(0).to_numpy()[y])),
        "others_median": float(np.median(frame[name].fill_null(0).to_numpy()[~y])),
    } for k, name in enumerate(EARLY_SIGNALS)]).sort("auc", descending=True)
    model = LogisticRegression(max_iter=1000).fit(x[~test], y[~test])
    score = model.predict_proba(x[test])[:, 1]
    k = max(1, int(round(0.05 * test.sum())))
    precision = float(y[test][np.argsort(-score)[:k]].mean())
    return signals, {"model_auc": float(roc_auc_score(y[test], score)), "precision_at_5pct": precision,
                     "base_rate": float(y[test].mean()), "held_out_customers": int(test.sum()),
                     "lift_at_5pct": precision / max(float(y[test].mean()), 1e-9),
                     "coefficients": dict(zip(EARLY_SIGNALS, model.coef_[0].round(3).tolist()))}


# --- win-back experiment ---------------------------------------------------------------------
ARMS = ["control", "offer_10", "offer_20"]
MDE = 0.05  # absolute uplift in the 90-day return rate we want to be able to detect
ALPHA, POWER = 0.05, 0.8


def _unit_hash(values: pl.Series, salt: str) -> np.ndarray:
    return np.array([int(hashlib.sha256(f"{salt}:{v}".encode()).hexdigest()[:12], 16) for v in values.to_list()])


def winback_assignment(predictions: pl.DataFrame, salt: str) -> tuple[pl.DataFrame, dict]:
    """At-risk purchasers -> arms, balanced within each risk tier by a salted-hash order (deterministic,
    reproducible from the salt alone, not guessable from the id)."""
    at_risk = predictions.filter(~pl.col("cold_start") & (pl.col("churn_probability") >= 0.6))
    if at_risk.is_empty():
        return at_risk.select("customer_id").with_columns(arm=pl.lit(None, pl.String)), {"state": "no at-risk customers"}
    ordered = at_risk.with_columns(_h=pl.Series(_unit_hash(at_risk["customer_id"], salt))).sort("risk_tier", "_h")
    assigned = ordered.with_columns(
        arm=pl.int_range(pl.len()).over("risk_tier").mod(len(ARMS)).replace_strict(dict(enumerate(ARMS)),
                                                                                  return_dtype=pl.String),
        assigned_on=pl.col("as_of"),
    ).select("customer_id", "arm", "risk_tier", "churn_probability", "assigned_on").sort("customer_id")
    return assigned, power_calculation(1 - float(at_risk["churn_probability"].mean()), assigned.height)


def power_calculation(p0: float, n_total: int) -> dict:
    from scipy.stats import norm

    p1 = min(p0 + MDE, 0.999)
    z = norm.ppf(1 - ALPHA / 2) + norm.ppf(POWER)
    n_per_arm = int(np.ceil(z**2 * (p0 * (1 - p0) + p1 * (1 - p1)) / (p1 - p0) ** 2))
    return {"baseline_return_rate": p0, "mde_absolute": MDE, "alpha": ALPHA, "power": POWER,
            "required_per_arm": n_per_arm, "available_per_arm": n_total // len(ARMS),
            "powered": n_total // len(ARMS) >= n_per_arm}


WINBACK_SESSION_COLUMNS = ["customer_id", "session_date", "purchase_made"]


def winback_results(assignment: pl.DataFrame, sessions: pl.LazyFrame | pl.DataFrame) -> tuple[pl.DataFrame, str]:
    if assignment.is_empty() or assignment["arm"].null_count() == assignment.height:
        return pl.DataFrame(), "no experiment running (no at-risk customers were assigned)"
    sessions = sessions.lazy().select(WINBACK_SESSION_COLUMNS)
    start = assignment["assigned_on"].max()
    last = sessions.select(pl.col("session_date").max()).collect().item()
    if last is None or last <= start:
        return pl.DataFrame(), f"waiting for outcomes: assigned on {start}, no sessions after that date yet"
    end = min(last, start + timedelta(days=90))
    returned = sessions.filter((pl.col("session_date") > start) & (pl.col("session_date") <= end)
                               & pl.col("purchase_made")).select("customer_id").unique().collect().with_columns(
        r=pl.lit(True))
    per_arm = assignment.join(returned, on="customer_id", how="left").group_by("arm").agg(
        customers=pl.len(), returned=pl.col("r").is_not_null().sum()).with_columns(
        return_rate=pl.col("returned") / pl.col("customers")).sort("arm")
    control = per_arm.filter(pl.col("arm") == "control").row(0, named=True)
    uplift = per_arm["return_rate"] - control["return_rate"]
    se = np.sqrt(per_arm["return_rate"] * (1 - per_arm["return_rate"]) / per_arm["customers"]
                 + control["return_rate"] * (1 - control["return_rate"]) / control["customers"])
    p = two_proportion_p(per_arm["returned"], per_arm["customers"], control["returned"], control["customers"])
    table = per_arm.with_columns(uplift=uplift, uplift_low=uplift - Z95 * se, uplift_high=uplift + Z95 * se,
                                 p_value=pl.Series(p))
    days = (end - start).days
    return table, f"outcomes over {days} of 90 days after {start}" + ("" if days >= 90 else " (window still open)")
