"""`customer_features` (the as-of snapshot that is scored) and `churn_training_set` (labelled windows)."""

from datetime import date

import dagster as dg
import polars as pl

from ecom_assets.automation import REFRESH_FIRST_MODEL, REFRESH_PER_DROP
from ecom_assets.features.build import (
    FEATURE_WORDS,
    HISTORY_COLUMNS_USED,
    build_features,
    build_training_set,
    derive_features,
    window_aggregates,
)
from ecom_assets.features.history import update_history
from ecom_assets.features.lifetime import LIFETIME_COLUMNS
from ecom_assets.io import StoredParts, columns_in, read_parquet
from ecom_assets.metadata import NO_DATA, column_schema, md_table
from ecom_assets.settings import EcomSettings

OWNER = "team:data-science"
clean_sessions_key = dg.AssetKey("clean_sessions")


class AsOfConfig(dg.Config):
    """The as-of date T (ISO). Empty: the latest clean session_date."""

    as_of: str = ""


def resolve_as_of(config: AsOfConfig, sessions: pl.LazyFrame) -> date | None:
    if config.as_of:
        return date.fromisoformat(config.as_of)
    return sessions.select(pl.col("session_date").max()).collect().item()


FEATURE_SCHEMA = column_schema({
    "customer_id": "string",
    "as_of": "date - the cutoff the features were computed at",
    "cold_start": "bool - visited but never purchased by the cutoff (scored by a prior)",
    **{name: f"feature - {words}" for name, words in FEATURE_WORDS.items()},
})


HISTORY_SCHEMA = column_schema({
    "customer_id": "string",
    "first_seen": "date - first session", "last_session": "date - latest session",
    "first_purchase": "date - first purchase (null: never bought)",
    "last_purchase": "date - latest purchase (null: never bought)",
    "browsing_total_sec": "state - browsing seconds summed", "browsing_sessions": "state - sessions with a browsing time",
    "weekend_sessions": "state - sessions on a Saturday or Sunday",
    "visits::<category>": "state - visits per product category, for the `max_category_columns` (default 20) most "
                          "visited categories (one column each; unknown excluded)",
    "visits_pooled": "state - visits in every other category (pooled; counts as one category in the mix)",
    "purchase_days": "state - distinct purchase dates",
    "gap_sq_sum": "state - sum of squared days between consecutive purchase dates",
    "units": "state - items bought (sum of the purchases' units_purchased)",
    "unit_orders": "state - purchases that say how many items they held (orders do; sessions and events do not)",
    **{name: f"aggregate - {FEATURE_WORDS[name]}" for name in LIFETIME_COLUMNS},
})


@dg.asset(
    group_name="features",
    owners=[OWNER],
    kinds={"polars"},
    required_resource_keys={"io_manager", "settings"},
    tags=REFRESH_PER_DROP,
    description=(
        "Lifetime aggregates per customer over every clean session (first/last dates, visits, purchases, spend, "
        "browsing, purchase gaps, category mix): the cutoff-independent half of `customer_features`. Stored as a "
        "mergeable state (counts, sums, minima, maxima, visits per category, the purchase-gap chain) beside the "
        "readable aggregates, so a new drop is merged in without re-reading earlier sessions; customers with a "
        "purchase dated before their last one are recomputed; a stored part that changed (re-ingested drop, "
        "superseded rows, new customer flags) recomputes everyone. Metadata `mode` says which happened."
    ),
    metadata=HISTORY_SCHEMA,
)
def customer_history(context: dg.AssetExecutionContext, clean_sessions: pl.LazyFrame) -> dg.Output:
    io_manager = context.resources.io_manager
    parts = StoredParts(io_manager.dataset_dir(clean_sessions_key)).paths()
    previous_event = context.instance.get_latest_materialization_event(context.asset_key)
    covered, previous = None, None
    if previous_event is not None:
        meta = previous_event.asset_materialization.metadata
        stored = io_manager.stored_file(context.asset_key)
        if "covers" in meta and stored.exists():
            covered, previous = meta["covers"].value, read_parquet(stored)
    history, summary, covers = update_history(previous, covered, parts,
                                              context.resources.settings.max_category_columns)
    return dg.Output(history, metadata={
        "dagster/row_count": history.height,
        **summary,
        "covers": dg.MetadataValue.json(covers),
        "last_session": str(history["last_session"].max()) if history.height else "none",
    })


@dg.asset(
    group_name="features",
    owners=[OWNER],
    kinds={"polars"},
    ins={"customer_history": columns_in(HISTORY_COLUMNS_USED)},
    tags=REFRESH_PER_DROP,
    description=(
        "Point-in-time features per customer as of T (default: the latest clean session date; set `as_of` in "
        "the launchpad or `ecom-assets run --as-of`): RFM, sessions, 30-vs-60-day trend, purchase gaps, "
        "product mix, temporal and financial features, demographics. Only rows dated <= T are used — the same "
        "function builds every training window. At the default T the lifetime half comes from "
        "`customer_history` and only the last 90 days of sessions are read; an earlier T recomputes from the "
        "sessions."
    ),
    metadata=FEATURE_SCHEMA,
)
def customer_features(config: AsOfConfig, settings: EcomSettings, customer_history: pl.DataFrame,
                      clean_sessions: pl.LazyFrame, clean_customers: pl.DataFrame) -> dg.Output:
    latest = customer_history["last_session"].max() if customer_history.height else None
    as_of = date.fromisoformat(config.as_of) if config.as_of else latest
    if as_of is None:  # no clean session yet: the typed, empty feature table (every column downstream expects)
        return dg.Output(build_features(clean_sessions.head(0), clean_customers.head(0), date.today())[0],
                         metadata={"dagster/row_count": 0, "as_of": "no data yet", "note": NO_DATA})
    if latest is not None and as_of >= latest:  # every session counts: the stored lifetime half is exact
        features, btyd = derive_features(customer_history, window_aggregates(clean_sessions, as_of), clean_customers, as_of)
        source = "customer_history + last 90 days of sessions"
    else:
        features, btyd = build_features(clean_sessions, clean_customers, as_of, settings.max_category_columns)
        source = f"all sessions up to {as_of} (as_of before the latest session)"
    summary = features.select(
        pl.len().alias("customers"), pl.col("cold_start").sum().alias("cold_start"),
        pl.col("days_since_last_purchase").median().alias("median_days_since_purchase"),
        pl.col("n_purchases").mean().alias("mean_purchases"), pl.col("aov").median().alias("median_aov"),
    )
    return dg.Output(features, metadata={
        "dagster/row_count": features.height,
        "as_of": str(as_of),
        "computed_from": source,
        "cold_start": int(features["cold_start"].sum()),
        "summary": dg.MetadataValue.md(md_table(summary)),
        "bgnbd_fit": dg.MetadataValue.json(btyd),
    })


@dg.asset(
    group_name="features",
    owners=[OWNER],
    kinds={"polars"},
    tags=REFRESH_FIRST_MODEL,
    description=(
        "Labelled training windows: for cutoffs c = T-90, T-120, … every 30 days (up to 12, while 90 days of "
        "history precede c), the features as of c (with a BG/NBD fitted at c) and `churned` = no purchase in "
        "(c, c+90]. The newest window (`is_holdout`) is the out-of-time holdout every gate and metric uses. Above 100,000 customers a stable hash-sample of whole "
        "customers is used (`sample_share`)."
    ),
    metadata=column_schema({
        "customer_id": "string",
        "cutoff": "date - the features are as of this date",
        "window": "int - 0 = newest window (the holdout)",
        "is_holdout": "bool",
        "sample_share": "float - share of customers in the stable hash-sample (1.0 = all)",
        "churned": "bool - no purchase in (cutoff, cutoff + 90 days]",
        "…": "every customer_features column, computed as of cutoff",
    }),
)
def churn_training_set(config: AsOfConfig, settings: EcomSettings, clean_sessions: pl.LazyFrame,
                       clean_customers: pl.DataFrame) -> dg.Output:
    as_of = resolve_as_of(config, clean_sessions)
    training, fits = build_training_set(clean_sessions, clean_customers, as_of,
                                        max_categories=settings.max_category_columns) if as_of else (pl.DataFrame(), [])
    if training.is_empty():
        return dg.Output(training, metadata={"dagster/row_count": 0, "windows": 0,
                                             "note": "no labelled 90-day window fits in the history yet"})
    per_window = training.group_by("window", "cutoff", "is_holdout").agg(
        customers=pl.len(), purchasers=(~pl.col("cold_start")).sum(),
        churn_rate=pl.col("churned").filter(~pl.col("cold_start")).mean(),
    ).sort("window")
    return dg.Output(training, metadata={
        "dagster/row_count": training.height,
        "windows": per_window.height,
        "as_of": str(as_of),
        "customer_sample_share": float(training["sample_share"][0]),
        "per_window": dg.MetadataValue.md(md_table(per_window)),
        "bgnbd_fit_seconds": round(sum(f.get("fit_seconds", 0.0) for f in fits), 3),
        "bgnbd_fits": dg.MetadataValue.json(fits),
    })
