"""What event streams and order lines add: funnels per category and item, co-viewed and
co-purchased pairs, conversion by hour of day and day of week.

Pure polars functions first, then their thin assets (group `insights`). Every rate is a share of
the same sessions (a session that purchased without a cart event counts as viewed-and-purchased,
never as carted), with a 95 % Wilson interval (Wilson 1927, via `insights.stats.wilson`).
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from ecom_assets.automation import REFRESH_DAILY
from ecom_assets.exports import write_safe_csv
from ecom_assets.insights.analyses import _rate
from ecom_assets.insights.stats import MAX_ITEMS, MIN_TESTED_TOGETHER, TESTED_CELLS, cooccurrence_test
from ecom_assets.io import columns_in
from ecom_assets.metadata import NO_DATA, column_schema, empty_table, md_table
from ecom_assets.schemas import UNKNOWN_PRODUCT, converted
from ecom_assets.settings import EcomSettings

MIN_ITEM_SESSIONS = 20  # item_funnel: products viewed in fewer sessions say nothing reliable
MIN_PAIR_BASKETS = MIN_TESTED_TOGETHER  # pairs: items in fewer baskets are left out, pairs together fewer untested
FUNNEL_EVENT_COLUMNS = ["session_id", "event_type", "product_id", "category"]
RATES = {  # rate -> (numerator, denominator), both session counts
    "view_to_cart": ("viewed_and_carted", "sessions_viewed"),
    "view_to_purchase": ("viewed_and_purchased", "sessions_viewed"),
    "cart_to_purchase": ("carted_and_purchased", "sessions_carted"),
    "cart_abandonment": ("carted_not_purchased", "sessions_carted"),
}
FUNNEL_COLUMNS = {
    "sessions_viewed": "int - sessions with a view event of it (a product view; page views without a product "
                       "are not counted)",
    "sessions_carted": "int - sessions with a cart event of it",
    "sessions_purchased": "int - sessions with a purchase event of it",
    "viewed_and_carted": "int", "viewed_and_purchased": "int", "carted_and_purchased": "int",
    "carted_not_purchased": "int",
    **{f"{rate}{end}": f"float64 - {num} / {den}" + (" (95 % Wilson bound)" if end else "")
       for rate, (num, den) in RATES.items() for end in ("", "_low", "_high")},
}
# what a purchase must name its products for: null when a purchasing session names none (`event_funnel`)
PURCHASE_COLUMNS = ["sessions_purchased", "viewed_and_purchased", "carted_and_purchased", "carted_not_purchased",
                    *(f"{rate}{end}" for rate in ("view_to_purchase", "cart_to_purchase", "cart_abandonment")
                      for end in ("", "_low", "_high"))]
NOT_MEASURABLE = ("not measurable: {n:,} purchasing session(s) name no product (an order-level purchase such as "
                  "Segment's Order Completed without its products), so which viewed or carted item they bought is "
                  "unknown; sessions_purchased, the *_and_purchased / carted_not_purchased counts and view_to_purchase, "
                  "cart_to_purchase, cart_abandonment are null (product_funnel, by session, still counts them)")


def purchasing_sessions_without_product(events: pl.LazyFrame | pl.DataFrame) -> int:
    """Sessions whose purchase events all name no product (order-level purchases): no funnel row can hold them."""
    purchase = pl.col("event_type") == "purchase"
    return int(events.lazy().group_by("session_id").agg(
        without=(purchase & pl.col("product_id").is_null()).any(),
        with_product=(purchase & pl.col("product_id").is_not_null()).any(),
    ).select((pl.col("without") & ~pl.col("with_product")).sum()).collect().item())


def event_funnel(events: pl.LazyFrame | pl.DataFrame, level: str, min_sessions: int = 0,
                 unplaced: int | None = None) -> pl.DataFrame:
    """Clean events -> one row per `level` value (`category`, or `product_id`) with the sessions that
    viewed / carted / purchased it and the rates between them.

    Only events about a product count, at both levels: a page view or session start without a product
    is no view of any category (it stays a page view of its session in clean_sessions); a product event
    without a category counts under 'unknown'. `min_sessions`: keep values viewed in at least this many
    sessions. When any purchasing session names no product (`unplaced`, counted by
    `purchasing_sessions_without_product` unless given) the PURCHASE_COLUMNS are null: such a session would
    count as carted-not-purchased under items it may well have bought (a tryout read cart_abandonment 1.0 where
    cart -> purchase was ~0.56), by an amount no row can tell — even one such session makes every row's purchase
    figures a lower bound of unknown slack, so none is given rather than a guessed share threshold."""
    key = pl.col(level).fill_null(UNKNOWN_PRODUCT) if level == "category" else pl.col(level)
    per_session = (
        events.lazy().filter(pl.col("product_id").is_not_null())
        .select("session_id", key.alias(level), "event_type")
        .group_by(level, "session_id")
        .agg(viewed=(pl.col("event_type") == "view").any(), carted=(pl.col("event_type") == "cart").any(),
             purchased=(pl.col("event_type") == "purchase").any())
    )
    funnel = per_session.group_by(level).agg(
        sessions_viewed=pl.col("viewed").sum(), sessions_carted=pl.col("carted").sum(),
        sessions_purchased=pl.col("purchased").sum(),
        viewed_and_carted=(pl.col("viewed") & pl.col("carted")).sum(),
        viewed_and_purchased=(pl.col("viewed") & pl.col("purchased")).sum(),
        carted_and_purchased=(pl.col("carted") & pl.col("purchased")).sum(),
        carted_not_purchased=(pl.col("carted") & ~pl.col("purchased")).sum(),
    ).filter(pl.col("sessions_viewed") >= min_sessions).collect()
    funnel = with_rates(funnel.with_columns(pl.exclude(level).cast(pl.Int64)), RATES)
    if (purchasing_sessions_without_product(events) if unplaced is None else unplaced):
        funnel = funnel.with_columns(pl.lit(None, funnel.schema[c]).alias(c) for c in PURCHASE_COLUMNS)
    return funnel.sort("sessions_viewed", level, descending=[True, False])


def with_rates(frame: pl.DataFrame, rates: dict[str, tuple[str, str]]) -> pl.DataFrame:
    """Each rate = numerator / denominator with its 95 % Wilson interval (`_low`, `_high`; null where the
    denominator is 0), by product_funnel's own rule (analyses._rate)."""
    return frame.with_columns(expr for rate, (num, den) in rates.items() for expr in _rate(rate, pl.col(num), pl.col(den)))


def pairs_within(baskets: pl.LazyFrame | pl.DataFrame, basket: str, item: str, unit: str = "baskets",
                 min_baskets: int = MIN_PAIR_BASKETS, seed: int = 0, max_items: int = MAX_ITEMS,
                 tested_cells: int = TESTED_CELLS) -> tuple[pl.DataFrame, dict]:
    """(items that occur in the same basket — a session's views, an order's lines —, how they were tested).

    One row per pair `item_a < item_b` held together by at least one basket: `baskets_together`, each
    item's baskets, `baskets` (all baskets holding a tested item), lift = together x baskets / (a x b), and
    the significance of `stats.cooccurrence_test`: a curveball null on the basket x item incidence matrix
    that keeps every basket's number of distinct items and every item's number of baskets, z, p, BH q,
    `significant`. Items in fewer than `min_baskets` baskets are left out first (no pair of theirs could be
    tested), then at most stats.MAX_ITEMS most frequent items; big inputs test a hash-sample (see `how`)."""
    held = baskets.lazy().select(basket, pl.col(item).alias("item")).drop_nulls().unique().collect()
    frequent = held.group_by("item").len().filter(pl.col("len") >= min_baskets)
    held = held.join(frequent, on="item", how="semi")
    pairs, how = cooccurrence_test(held, basket, "item", unit, min_together=max(min_baskets, 1), seed=seed,
                                   max_items=max_items, tested_cells=tested_cells)
    how[f"items_below_{min_baskets}_{unit}"] = (
        baskets.lazy().select(pl.col(item).drop_nulls().n_unique()).collect().item() - frequent.height)
    return (
        pairs.filter(pl.col("together") > 0)
        .rename({"together": "baskets_together", "rows_a": "baskets_a", "rows_b": "baskets_b", "rows": "baskets"})
        .sort("baskets_together", "item_a", "item_b", descending=[True, False, False]),
        how,
    )


PAIR_COLUMNS = {
    "relation": "string - co_viewed (same session) | co_purchased (same order / purchasing session)",
    "level": "string - category | product", "item_a": "string", "item_b": "string",
    "baskets_together": "int - sessions / orders holding both", "baskets_a": "int", "baskets_b": "int",
    "baskets": "int - sessions / orders of this relation holding a tested item",
    "lift": "float64 - together x baskets / (baskets_a x baskets_b); 1 = as often as independent items",
    "adjusted_lift": "float64 - together / its mean under the null (basket sizes and item frequencies kept)",
    "z": "float64 - (together - 1/2 - null mean) / null sd",
    "p_value": "float64 - one-sided, P(count >= together) under the null (Pearson III of its mean, sd, skewness)",
    "q_value": f"float64 - Benjamini-Hochberg within relation x level; null below {MIN_PAIR_BASKETS} baskets together",
    "significant": "bool - q < 0.05 and more often together than the null",
}
PAIR_SCHEMA = {"relation": pl.String, "level": pl.String, "item_a": pl.String, "item_b": pl.String,
               "baskets_together": pl.Int64, "baskets_a": pl.Int64, "baskets_b": pl.Int64, "baskets": pl.Int64,
               "lift": pl.Float64, "adjusted_lift": pl.Float64, "z": pl.Float64, "p_value": pl.Float64,
               "q_value": pl.Float64, "significant": pl.Boolean}
PAIR_EVENT_COLUMNS = ["session_id", "event_type", "product_id", "category"]
PAIR_LINE_COLUMNS = ["order_id", "product_id", "category"]


def co_occurrence(events: pl.LazyFrame | pl.DataFrame, lines: pl.LazyFrame | pl.DataFrame,
                  min_baskets: int = MIN_PAIR_BASKETS, seed: int = 0, max_items: int = MAX_ITEMS,
                  tested_cells: int = TESTED_CELLS) -> tuple[pl.DataFrame, dict]:
    """(co-viewed pairs — views within a session — beside co-purchased pairs — lines within an order and
    purchase events within a session — at category and product level, each tested by `pairs_within`;
    how each relation x level was tested). Events without a category count under 'unknown', which is
    never paired (it is no category)."""
    category = pl.col("category").fill_null(UNKNOWN_PRODUCT)
    events, lines = events.lazy(), lines.lazy()
    viewed = events.filter(pl.col("event_type") == "view").select(basket="session_id", category=category,
                                                                  product_id="product_id")
    bought = pl.concat([
        lines.select(basket=pl.lit("order:") + pl.col("order_id"), category=category, product_id="product_id"),
        events.filter(pl.col("event_type") == "purchase")
        .select(basket=pl.lit("session:") + pl.col("session_id"), category=category, product_id="product_id"),
    ])
    parts, how = [], {}
    for relation, frame, unit in (("co_viewed", viewed, "sessions"), ("co_purchased", bought, "baskets")):
        for level, column in (("category", "category"), ("product", "product_id")):
            source = frame.filter(pl.col("category") != UNKNOWN_PRODUCT) if level == "category" else frame
            pairs, tested = pairs_within(source, "basket", column, unit, min_baskets, seed, max_items, tested_cells)
            parts.append(pairs.with_columns(relation=pl.lit(relation), level=pl.lit(level)))
            how[f"{relation}_{level}"] = tested
    return pl.concat(parts, how="diagonal_relaxed").select(list(PAIR_SCHEMA)).cast(PAIR_SCHEMA), how


def basket_export(pairs: pl.DataFrame) -> pl.DataFrame:
    """The findings a marketer acts on: significant pairs only, highest lift first."""
    return pairs.filter(pl.col("significant")).sort("lift", "baskets_together", descending=True)


HOURLY_SESSION_COLUMNS = ["session_start"]  # plus purchase_made and the conversion columns (in the daily columns)


def conversion_by_time(sessions: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Conversion (purchasing sessions / sessions, Wilson 95 %) by hour of day (UTC) and by day of
    week (1 = Monday), over sessions that record browsing and a start time. Sessions made from
    orders are purchases by construction (no browsing recorded) and would fake 100 % conversion,
    so they are left out; without such sessions the table is empty. A purchase is `converted` (an events session
    whose order is counted on the order's own session converted all the same)."""
    sessions = sessions.lazy()
    bought = converted(sessions.collect_schema().names())
    browsing = sessions.filter(pl.col("session_start").is_not_null() & pl.col("browsing_time_sec").is_not_null())
    parts = []
    for grain, expr in (("hour_of_day", pl.col("session_start").dt.hour()),
                        ("day_of_week", pl.col("session_start").dt.weekday())):
        parts.append(browsing.group_by(expr.cast(pl.Int64).alias("level"))
                     .agg(sessions=pl.len().cast(pl.Int64), purchases=bought.sum().cast(pl.Int64))
                     .with_columns(grain=pl.lit(grain)))
    table = pl.concat(parts).collect().sort("grain", "level")
    return with_rates(table, {"conversion": ("purchases", "sessions")}).rename(
        {"conversion_low": "low", "conversion_high": "high"})


# --- assets -----------------------------------------------------------------------------------
def _funnel_asset(name: str, level: str, min_sessions: int, what: str):
    @dg.asset(
        name=name, group_name="insights", owners=["team:analytics"], kinds={"polars"}, tags=REFRESH_DAILY,
        ins={"clean_events": columns_in(FUNNEL_EVENT_COLUMNS)},
        description=f"View -> cart -> purchase per {what} from clean_events: the sessions that had a view, cart or "
        "purchase event of it (events about a product only: page views without one are no product views), and the "
        "rates between them as shares of the same sessions with 95 % Wilson "
        "intervals; cart_abandonment = carted sessions without a purchase of it. A session counts under every "
        f"{level} it touched, so the figures differ from product_funnel's, which gives each whole session to its one "
        "most-viewed category; an order-level purchase (no product: Segment's Order Completed) is in no row here "
        "(metadata `purchasing_sessions_without_product`), and while any purchasing session names no product the "
        "purchase columns (sessions_purchased, *_and_purchased, carted_not_purchased, view_to_purchase, "
        "cart_to_purchase, cart_abandonment) are null — not measurable: which item it bought is unknown (metadata "
        "`purchase_columns` says why). Empty (and says so) until an events drop arrives.",
        metadata=column_schema({level: "string", **FUNNEL_COLUMNS}),
    )
    def funnel_asset(clean_events: pl.LazyFrame) -> dg.Output:
        if not clean_events.collect_schema().names() or clean_events.select(pl.len()).collect().item() == 0:
            return dg.Output(empty_table({level: "string", **FUNNEL_COLUMNS}),
                             metadata={"state": f"{NO_DATA}: no events (drop events*.csv)", "dagster/row_count": 0})
        unplaced = purchasing_sessions_without_product(clean_events)
        funnel = event_funnel(clean_events, level, min_sessions, unplaced)
        shown = [level, "sessions_viewed", "sessions_carted", "sessions_purchased", "view_to_purchase",
                 "cart_abandonment"]
        return dg.Output(funnel, metadata={
            "dagster/row_count": funnel.height,
            "min_sessions_viewed": min_sessions,
            # purchases no product row can hold: their sessions are counted by product_funnel, not here
            "purchasing_sessions_without_product": unplaced,
            "purchase_columns": NOT_MEASURABLE.format(n=unplaced) if unplaced else
            "measured: every purchasing session names its products",
            "funnel": dg.MetadataValue.md(md_table(funnel.select(shown))),
        })

    return funnel_asset


category_funnel = _funnel_asset("category_funnel", "category", 0,
                                "category (product events without one: 'unknown')")
item_funnel = _funnel_asset("item_funnel", "product_id", MIN_ITEM_SESSIONS,
                            f"product viewed in at least {MIN_ITEM_SESSIONS} sessions")


@dg.asset(
    group_name="insights", owners=["team:marketing"], kinds={"polars", "csv"}, tags=REFRESH_DAILY,
    ins={"clean_events": columns_in(PAIR_EVENT_COLUMNS), "clean_order_lines": columns_in(PAIR_LINE_COLUMNS)},
    description="Real baskets: categories and products viewed in the same session (co_viewed, from clean_events) beside "
    "those bought in the same order (clean_order_lines) or purchasing session (co_purchased), with lift and a "
    "permutation test per relation x level: a curveball null on the basket x item matrix that keeps every basket's "
    "number of distinct items and every item's number of baskets exactly (Strona et al. 2014, as cross_sell_rules), "
    "one-sided z of the co-occurrence against the null's mean and spread, Benjamini-Hochberg q < 0.05. Only baskets "
    f"with two or more tested items enter the null; items in fewer than {MIN_PAIR_BASKETS} baskets are left out and "
    f"pairs together in fewer are not tested; at most {MAX_ITEMS} most frequent items per relation x level; beyond "
    f"{TESTED_CELLS:,} baskets x items the null runs on a hash-sample of baskets (metadata `tested`). Big baskets and "
    "popular items explain nothing: only `significant` pairs are findings. The table keeps every pair seen together; "
    "exports/basket_pairs.csv holds the significant ones, highest lift first, rounded. Empty until an events or "
    "orders drop arrives.",
    metadata=column_schema(PAIR_COLUMNS),
)
def basket_pairs(settings: EcomSettings, clean_events: pl.LazyFrame, clean_order_lines: pl.LazyFrame) -> dg.Output:
    events = clean_events if clean_events.collect_schema().names() else \
        pl.LazyFrame(schema=dict.fromkeys(PAIR_EVENT_COLUMNS, pl.String))
    lines = clean_order_lines if clean_order_lines.collect_schema().names() else \
        pl.LazyFrame(schema=dict.fromkeys(PAIR_LINE_COLUMNS, pl.String))
    pairs, how = co_occurrence(events, lines)
    findings = basket_export(pairs)
    path = write_safe_csv(findings, settings.exports / "basket_pairs.csv")
    tested = pl.DataFrame([{"relation_level": key, **{k: str(v) for k, v in figures.items()}}
                           for key, figures in how.items()], infer_schema_length=None)
    return dg.Output(pairs, metadata={
        "dagster/row_count": pairs.height,
        "significant_pairs": findings.height,
        **{f"significant_{key}": int(figures.get("significant_pairs", 0)) for key, figures in how.items()},
        "export": dg.MetadataValue.path(str(path)),
        "tested": dg.MetadataValue.md(md_table(tested)),
        "findings": dg.MetadataValue.md(md_table(findings.head(20)) if findings.height else "_no pair occurs together "
                                        "more often than basket sizes and item frequencies explain_"),
    })


EVENT_ASSETS = [category_funnel, item_funnel, basket_pairs]
