"""`feature_drift_report`, `sessions_drop_profile` and `model_performance`."""

import json
import uuid
from datetime import datetime, timezone

import dagster as dg
import polars as pl

from ecom_assets.automation import REFRESH_DAILY
from ecom_assets.churn import registry
from ecom_assets.ingest.partitions import sessions_files
from ecom_assets.io import atomic_write_bytes, columns_in, write_json_atomic
from ecom_assets.metadata import column_schema, md_table
from ecom_assets.monitoring.drift import drop_profile_shift, evidently_drift, titled_html
from ecom_assets.monitoring.performance import read_prediction_log, realised_performance
from ecom_assets.plots import png_markdown
from ecom_assets.settings import EcomSettings

OWNER = "team:data-platform"
DRIFT_CHECK = "feature_drift_below_threshold"
SHIFT_CHECK = "drop_not_shifted"
DRIFT_LATEST = "feature_drift_latest.json"
PERFORMANCE_LATEST = "model_performance_latest.json"


def _save_html(snapshot, settings: EcomSettings, stem: str, title: str | None = None,
               notes: list[str] | None = None) -> tuple[str, str]:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    dated = settings.reports / f"{stem}_{stamp}.html"
    latest = settings.reports / f"{stem}_latest.html"
    page = titled_html(snapshot, title, notes or []) if title else snapshot.get_html_str(as_iframe=False)
    for path in (dated, latest):
        atomic_write_bytes(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))
    return str(dated), str(latest)


@dg.asset(
    group_name="monitoring",
    owners=[OWNER],
    kinds={"evidently", "polars"},
    tags=REFRESH_DAILY,
    description=(
        "Evidently data-drift report: the current customer_features snapshot vs the serving champion's training "
        "reference (models/<version>/reference_features.parquet), both sampled to `drift_sample_rows`. Watches "
        "per-visit rates, recent-window activity and demographics (lifetime sums grow with the customer base and "
        "are left out). Configured as the product decides: DataDriftPreset(drift_share=drift_share_threshold), "
        "each column tested with drift_numeric_method / drift_categorical_method above drift_column_threshold, so "
        "the report's headline is the retrain decision. A watched column that is entirely empty (purchase logs have "
        "no browsing time; many shops record no age) or one constant value in both frames is left out and named. "
        "HTML in reports/ (dated + feature_drift_latest.html), titled with the model version and both as-of dates; "
        "the retrain sensor reads reports/feature_drift_latest.json."
    ),
    metadata=column_schema({"column": "string", "method": "string - Evidently's test for the column",
                            "score": "float64", "threshold": "float64", "drifted": "bool"}),
    check_specs=[dg.AssetCheckSpec(DRIFT_CHECK, asset="feature_drift_report",
                                   description="share of drifted columns below settings.drift_share_threshold")],
)
def feature_drift_report(settings: EcomSettings, customer_features: pl.DataFrame):
    champion = registry.champion_version(settings.models)
    reference_path = registry.reference_features_path(settings.models, champion) if champion else None
    if reference_path is None or not reference_path.exists() or customer_features.is_empty():
        yield dg.Output(pl.DataFrame(), metadata={"state": "no reference yet: no champion model has been promoted"})
        yield dg.AssetCheckResult(check_name=DRIFT_CHECK, passed=True, severity=dg.AssetCheckSeverity.WARN,
                                  description="nothing to compare yet")
        return
    current = customer_features.filter(~pl.col("cold_start"))
    card = registry.load_card(settings.models, champion)
    reference_as_of = card.get("reference_as_of") or card.get("holdout_cutoff") or "unknown"
    as_of = str(customer_features["as_of"][0])
    threshold = settings.drift_share_threshold
    drift = evidently_drift(current, pl.read_parquet(reference_path), settings.drift_sample_rows, threshold,
                            settings.drift_numeric_method, settings.drift_categorical_method,
                            settings.drift_column_threshold)
    table, share = drift.table, drift.share
    left_out = [f"{c}: {why}" for c, why in drift.left_out.items()]
    drifted = table.filter(pl.col("drifted"))["column"].to_list()
    verdict = "drift detected" if drift.detected else "no dataset drift"
    title = f"Feature drift: customers as of {as_of} vs the reference of model {champion} (as of {reference_as_of})"
    notes = [f"{verdict}: {share:.0%} of {table.height} watched columns drifted; threshold {threshold:.0%} "
             f"(the share at which the product retrains). Per column: {settings.drift_numeric_method} (numeric), "
             f"{settings.drift_categorical_method} (categorical), drifted above {settings.drift_column_threshold}."]
    if left_out:
        notes.append("Left out (cannot be compared): " + "; ".join(left_out))
    if drift.snapshot is None:
        dated = latest = None
    else:
        dated, latest = _save_html(drift.snapshot, settings, "feature_drift", title, notes)
    summary = {
        "report_id": uuid.uuid4().hex[:12],
        "drift_share": share,
        "dataset_drift": drift.detected,
        "drifted_columns": drifted,
        "n_columns": table.height,
        "left_out_columns": drift.left_out,
        "threshold": threshold,
        "reference_version": champion,
        "reference_as_of": reference_as_of,
        "as_of": as_of,
        "title": title,
        "report_html": latest,
        "created_at": datetime.now(timezone.utc).isoformat(),
    }
    write_json_atomic(summary, settings.reports / DRIFT_LATEST)
    yield dg.Output(table, metadata={
        "title": title,
        "drift_share": share,
        "dataset_drift": drift.detected,
        "threshold": threshold,
        "drifted_columns": len(drifted),
        "drifted_names": ", ".join(drifted) or "none",
        "left_out_columns": ", ".join(drift.left_out) or "none",
        "left_out": "; ".join(left_out) or "none",
        "reference_version": champion,
        "reference_as_of": reference_as_of,
        "as_of": as_of,
        "per_column": dg.MetadataValue.md(md_table(table, max_rows=30)),
        "report": dg.MetadataValue.path(dated) if dated else "no column could be compared",
        "dagster/row_count": table.height,
    })
    yield dg.AssetCheckResult(
        check_name=DRIFT_CHECK, passed=not drift.detected, severity=dg.AssetCheckSeverity.WARN,
        description=f"{share:.0%} of {table.height} watched columns drifted (threshold {threshold:.0%}): "
                    f"{', '.join(drifted) or 'none'}" + (f"; left out: {'; '.join(left_out)}" if left_out else ""),
    )


# PSI over ten bins from a sample: its sampling noise is about (bins - 1) * (1/reference + 1/drop),
# 0.00005 from 200k reference rows, far below the 0.1 / 0.25 verdicts (1M rows took 0.15 s more per drop)
PROFILE_REFERENCE_ROWS = 200_000
PROFILE_MEASURES = ["purchase_made", "purchase_amount", "browsing_time_sec", "product_viewed"]


FIRST_DROP = "first drop: nothing to compare with"
NO_ROWS_KEPT = "this drop kept no rows (all quarantined or duplicates): nothing to profile"
HEADER_ONLY = "this drop holds no rows (a header-only file): nothing to profile"


def rows_read(instance: dg.DagsterInstance, raw_asset: str, partition: str) -> int | None:
    """`rows_in` of the latest materialization of `raw_asset`'s `partition` (the file's data rows), None if unknown."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(raw_asset), asset_partitions=[partition]), limit=1).records
    rows_in = records[0].asset_materialization.metadata.get("rows_in") if records else None
    return getattr(rows_in, "value", rows_in)


def shift_check(table: pl.DataFrame, settings: EcomSettings, nothing_to_compare: str | None) -> dg.AssetCheckResult:
    """WARN when any measure of this drop is shifted (PSI > settings.psi_shifted): names each one.
    `nothing_to_compare`: why no comparison was possible (FIRST_DROP, NO_ROWS_KEPT, HEADER_ONLY), else None."""
    shifted = table.filter(pl.col("verdict") == "shifted") if table.height else table
    named = ", ".join(f"{r['measure']} PSI {r['psi']:.3f}" for r in shifted.to_dicts())
    psis = {r["measure"]: round(r["psi"], 3) for r in table.to_dicts() if r["psi"] is not None} if table.height else {}
    if nothing_to_compare:
        description = nothing_to_compare
    elif named:
        description = f"shifted against the earlier drops (PSI > {settings.psi_shifted}): {named}"
    else:
        description = f"no measure above PSI {settings.psi_shifted}"
    return dg.AssetCheckResult(check_name=SHIFT_CHECK, passed=not named, severity=dg.AssetCheckSeverity.WARN,
                               description=description, metadata={**psis, "threshold": settings.psi_shifted})


@dg.asset(
    group_name="monitoring",
    owners=[OWNER],
    kinds={"polars"},
    partitions_def=sessions_files,
    # every earlier drop is read (a sample), but each partition is built once, by its own ingest run
    # (`ingest_sessions_job`); no automation condition: an eager one over this all-partitions input
    # re-ran every earlier drop's profile on each new drop
    ins={"raw_sessions": columns_in(["source_file", "ingested_at", *PROFILE_MEASURES],
                                    partition_mapping=dg.AllPartitionMapping())},
    description=(
        "Per sessions drop: how this file differs from every earlier drop (every k-th earlier row, at most "
        f"{PROFILE_REFERENCE_ROWS:,}) — population stability index of order "
        "amount and browsing time, category mix and conversion (shifted above `psi_shifted`, default 0.25; watch "
        "above `psi_watch`, default 0.1; settings resource), unless the drop's sampling noise explains a PSI that large "
        "(p >= 0.01 under PSI's chi-square null: a small drop is not called shifted by chance). Built with the drop's ingest run; a shifted drop "
        f"fails the WARN check `{SHIFT_CHECK}`, so on-call sees it at the file level before the features move."
    ),
    metadata=column_schema({"measure": "string", "previous": "float64 - median (rate for conversion)",
                            "this_drop": "float64", "psi": "float64 - null when a side has fewer than 20 values",
                            "p_value": "float64 - chance of a PSI this large between two samples of one distribution",
                            "verdict": "stable | watch | shifted | within sampling noise | too few values"}),
    check_specs=[dg.AssetCheckSpec(SHIFT_CHECK, asset="sessions_drop_profile", partitions_def=sessions_files,
                                   description="no measure of this drop has PSI above settings.psi_shifted against "
                                   "the earlier drops (WARN: a shifted drop is a health signal, not a stop)")],
)
def sessions_drop_profile(context: dg.AssetExecutionContext, settings: EcomSettings, raw_sessions: pl.LazyFrame):
    key = context.partition_key
    if not raw_sessions.collect_schema().names():
        empty = pl.DataFrame(schema={"purchase_made": pl.Boolean})
        table = drop_profile_shift(empty, empty)
        yield dg.Output(table, metadata={"state": "no rows"})
        yield shift_check(table, settings, FIRST_DROP)
        return
    this = raw_sessions.filter(pl.col("source_file") == key).collect()
    if not this.height:  # a header-only file, or every row quarantined or a duplicate: it is not a first drop
        table = drop_profile_shift(this, this)
        state = HEADER_ONLY if rows_read(context.instance, "raw_sessions", key) == 0 else NO_ROWS_KEPT
        yield dg.Output(table, metadata={"state": state, "rows": 0})
        yield shift_check(table, settings, state)
        return
    cutoff = this["ingested_at"].min()
    earlier = raw_sessions.filter((pl.col("source_file") != key) & (pl.col("ingested_at") < cutoff))
    # every k-th earlier row, at most PROFILE_REFERENCE_ROWS: PSI over ten bins needs far fewer than 10M rows
    earlier_rows = earlier.select(pl.len()).collect().item()
    every = max(1, -(-earlier_rows // PROFILE_REFERENCE_ROWS))
    earlier = earlier.select(PROFILE_MEASURES).gather_every(every).collect()
    table = drop_profile_shift(this, earlier, settings.psi_watch, settings.psi_shifted)
    shifted = table.filter(pl.col("verdict") == "shifted")["measure"].to_list() if table.height else []
    yield dg.Output(table, metadata={
        **({"state": FIRST_DROP} if earlier.is_empty() else {}),
        "rows": this.height,
        "compared_with_rows": earlier_rows,
        "reference_sample_rows": earlier.height,
        "shifted": ", ".join(shifted) or (FIRST_DROP if earlier.is_empty() else "none"),
        "profile": dg.MetadataValue.md(md_table(table)),
    })
    yield shift_check(table, settings, FIRST_DROP if earlier.is_empty() else None)


def _classification_report(settings: EcomSettings, log: pl.DataFrame, sessions: pl.DataFrame, row: dict) -> str | None:
    """Evidently classification report for one matured batch (HTML path), or None if evidently cannot."""
    from datetime import timedelta

    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    as_of = row["as_of"]
    batch = log.filter((pl.col("as_of") == as_of) & (pl.col("model_version") == row["model_version"])
                       & ~pl.col("cold_start"))
    bought = sessions.filter((pl.col("session_date") > as_of) & (pl.col("session_date") <= as_of + timedelta(days=90))
                             & pl.col("purchase_made")).select("customer_id").unique().with_columns(b=pl.lit(1))
    frame = batch.join(bought, on="customer_id", how="left").select(
        target=pl.col("b").is_null().cast(pl.Int64), prediction=pl.col("churn_probability"))
    definition = DataDefinition(classification=[BinaryClassification(target="target", prediction_probas="prediction")],
                                numerical_columns=["prediction"])
    snapshot = Report([ClassificationPreset()]).run(Dataset.from_pandas(frame.to_pandas(), data_definition=definition))
    return _save_html(snapshot, settings, "model_performance")[1]


@dg.asset(
    group_name="monitoring",
    owners=[OWNER],
    kinds={"evidently", "polars"},
    tags=REFRESH_DAILY,
    deps=["churn_predictions"],
    ins={"clean_sessions": columns_in(["customer_id", "session_date", "purchase_made"])},
    description=(
        "Realised performance: each logged prediction batch, once its 90-day window has passed in the clean data, "
        "joined with what customers actually did — AUC, Brier, top-decile precision per model version and batch, "
        "an Evidently classification report, and the realised-AUC trend. Batches still inside their window are "
        "listed as waiting. The retrain sensor reads reports/model_performance_latest.json."
    ),
    metadata=column_schema({"as_of": "date", "model_version": "string", "customers": "int",
                            "realised_churn_rate": "float64", "mean_predicted": "float64",
                            "realised_auc": "float64", "brier": "float64", "top_decile_precision": "float64"}),
)
def model_performance(settings: EcomSettings, clean_sessions: pl.DataFrame) -> dg.Output:
    log = read_prediction_log(settings.folder("warehouse") / "prediction_log")
    matured, waiting = realised_performance(log, clean_sessions)
    metadata = {"matured_batches": matured.height, "waiting_batches": waiting.height,
                "waiting": dg.MetadataValue.md(md_table(waiting) if waiting.height else "_(none)_")}
    if matured.is_empty():
        metadata["state"] = ("waiting for outcomes: " + ", ".join(
            f"{r['model_version']} batch {r['as_of']} matures on {r['matures_on']}" for r in waiting.to_dicts())
            if waiting.height else "no predictions logged yet")
        return dg.Output(matured, metadata=metadata)
    latest = matured.sort("as_of").tail(1).to_dicts()[0]
    card = registry.load_card(settings.models, latest["model_version"]) if latest["model_version"].startswith("v") else {}
    holdout_auc = card.get("metrics", {}).get("auc_out_of_time")
    html = _classification_report(settings, log, clean_sessions, latest)
    write_json_atomic({**{k: str(v) if k == "as_of" else v for k, v in latest.items()}, "holdout_auc": holdout_auc,
                       "report_id": f"{latest['as_of']}__{latest['model_version']}", "report_html": html,
                       "created_at": datetime.now(timezone.utc).isoformat()}, settings.reports / PERFORMANCE_LATEST)

    def trend(ax):
        for version, part in matured.sort("as_of").group_by("model_version", maintain_order=True):
            ax.plot(part["as_of"].to_list(), part["realised_auc"].to_list(), "o-", label=version[0])
        ax.set_ylabel("realised AUC")
        ax.legend()

    metadata.update({"latest_realised_auc": latest["realised_auc"], "holdout_auc_of_that_model": holdout_auc,
                     "per_batch": dg.MetadataValue.md(md_table(matured)),
                     "auc_trend": dg.MetadataValue.md(png_markdown(trend, "Realised AUC by batch")),
                     "report": dg.MetadataValue.path(html) if html else "not available",
                     "dagster/row_count": matured.height})
    return dg.Output(matured, metadata=metadata)


def read_json(path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None
