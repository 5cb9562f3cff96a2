"""`clean_customers`, `clean_sessions`, `quarantine_summary`: the validated tables every other
domain builds on, rebuilt by `drop_refresh_job` whenever a drop lands."""

import json

import dagster as dg
import polars as pl

from ecom_assets.automation import REFRESH_PER_DROP
from ecom_assets.clean.store import merge_sessions, table_stats
from ecom_assets.clean.tables import RowAccounting, build_clean_customers
from ecom_assets.io import Location, StoredParts
from ecom_assets.ingest.assets import PROVENANCE, RAW_ASSETS, RAW_COLUMNS, raw_sessions, unaccounted_drops
from ecom_assets.ingest.partitions import PARTITIONS
from ecom_assets.metadata import NO_DATA, column_schema, md_table
from ecom_assets.settings import EcomSettings

OWNER = "team:data-platform"
ALL_DROPS = dg.AllPartitionMapping()
ACCOUNTING_DESCRIPTION = ("rows from every drop = rows in the table + duplicates across files + rows superseded by "
                          "a later drop. Blocking: a table that lost a row is not built upon.")
PROVENANCE_COLUMNS = {k: v for k, v in PROVENANCE.items() if k != "ingested_at"}


HELD_BACK_CHECK = "every_drop_accounted"
HELD_BACK_DESCRIPTION = ("fails when a drop is held back because its row accounting does not add up (its own blocking "
                         "check failed) or its stored table lacks rows it counted; the other drops are still built")


def _raw_files(context: dg.AssetExecutionContext, kind: str) -> dict[str, Location]:
    """partition key -> stored raw table, for every drop of `kind` ingested so far."""
    partitions = context.instance.get_dynamic_partitions(PARTITIONS[kind].name)
    return context.resources.io_manager.partition_files(RAW_ASSETS[kind].key, partitions)


def _held_back(context: dg.AssetExecutionContext, kind: str, raw: dict[str, Location]) -> dict[str, str]:
    held_back = unaccounted_drops(context.resources.settings, kind, raw)
    for problem in held_back.values():
        context.log.error(f"held back, not built upon: {problem}")
    return held_back


def _held_back_check(held_back: dict[str, str]) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=HELD_BACK_CHECK,
        passed=not held_back,
        severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(held_back.values()) or "every stored drop adds up and is included",
        metadata={"held_back": ", ".join(held_back) or "none"},
    )


def _merge_metadata(dedup: RowAccounting) -> dict:
    return {
        "rows_from_drops": dedup.rows_from_drops,
        "duplicates_across_files": dedup.duplicates_across_files,
        "superseded_by_later_drop": dedup.superseded,
        "dagster/row_count": dedup.rows,
    }


def _accounting_check(dedup: RowAccounting, table: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="rows_accounted_for",
        passed=dedup.accounted,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(f"{dedup.rows_from_drops:,} rows from the drops = {dedup.rows:,} in {table} + "
                     f"{dedup.duplicates_across_files:,} duplicates across files + {dedup.superseded:,} superseded"),
        metadata=_merge_metadata(dedup),
    )


@dg.asset(
    group_name="clean",
    owners=[OWNER],
    kinds={"polars", "pandera"},
    ins={"raw_customers": dg.AssetIn(partition_mapping=ALL_DROPS)},
    required_resource_keys={"io_manager", "settings"},
    tags=REFRESH_PER_DROP,
    description=(
        "One row per customer across every customers drop (validated with pandera `CleanCustomers`). "
        "Identical rows in several drops count as duplicates; the same customer_id with different "
        "content keeps the version from the later drop."
    ),
    metadata=column_schema({**RAW_COLUMNS["customers"], **PROVENANCE_COLUMNS}),
    check_specs=[dg.AssetCheckSpec("rows_accounted_for", asset="clean_customers", blocking=True,
                                   description=ACCOUNTING_DESCRIPTION),
                 dg.AssetCheckSpec(HELD_BACK_CHECK, asset="clean_customers", description=HELD_BACK_DESCRIPTION)],
)
def clean_customers(context: dg.AssetExecutionContext, raw_customers: pl.DataFrame):
    held_back = _held_back(context, "customers", _raw_files(context, "customers"))
    if held_back and raw_customers.width:
        raw_customers = raw_customers.filter(~pl.col("source_file").is_in(list(held_back)))
    table, dedup = build_clean_customers(raw_customers)
    yield dg.Output(table, metadata={
        **_merge_metadata(dedup),
        "missing_gender": table["gender"].null_count(),
        "missing_location": table["location"].null_count(),
        "missing_signup_date": table["signup_date"].null_count(),
        "age_out_of_range": int(table["age_out_of_range"].sum()),
        "drops_held_back": len(held_back),
    })
    yield _accounting_check(dedup, "clean_customers")
    yield _held_back_check(held_back)


@dg.asset(
    group_name="clean",
    owners=[OWNER],
    kinds={"polars", "pandera", "parquet"},
    deps=[dg.AssetDep(raw_sessions, partition_mapping=ALL_DROPS)],
    required_resource_keys={"io_manager", "settings"},
    tags=REFRESH_PER_DROP,
    description=(
        "One row per session across every sessions drop (each part validated with pandera `CleanSessions`), "
        "stored as one parquet part per drop under `warehouse/clean_sessions/`. A new drop is merged against "
        "the stored parts (only the ids it shares with them are read back); the latest version of a "
        "session_id wins, a re-delivered identical row is a counted duplicate. Flags: `before_signup` (dated "
        "before the customer's signup_date) and `unknown_customer` (id not in clean_customers). Empty or "
        "'Unknown' products are the category 'unknown'. Rebuilt from scratch only when a stored drop was "
        "re-ingested; metadata `mode` says which happened."
    ),
    metadata=column_schema({
        **RAW_COLUMNS["sessions"],
        "before_signup": "bool - session dated before the customer's signup_date",
        "unknown_customer": "bool - customer_id not in clean_customers",
        **PROVENANCE_COLUMNS,
    }),
    check_specs=[
        dg.AssetCheckSpec("rows_accounted_for", asset="clean_sessions", blocking=True,
                          description=ACCOUNTING_DESCRIPTION),
        dg.AssetCheckSpec("sessions_of_unknown_customers", asset="clean_sessions",
                          description="warns when sessions reference customers not (yet) in clean_customers"),
        dg.AssetCheckSpec(HELD_BACK_CHECK, asset="clean_sessions", description=HELD_BACK_DESCRIPTION),
    ],
)
def clean_sessions(context: dg.AssetExecutionContext, clean_customers: pl.DataFrame):
    io_manager = context.resources.io_manager
    raw = _raw_files(context, "sessions")
    held_back = _held_back(context, "sessions", raw)
    parts = StoredParts(io_manager.dataset_dir(context.asset_key))
    report = merge_sessions(parts, {k: p for k, p in raw.items() if k not in held_back}, clean_customers)
    manifest = parts.manifest()
    totals = table_stats(manifest)
    unknown_customers = totals["unknown_customer"]
    yield dg.Output(parts, metadata={
        **_merge_metadata(report),
        "mode": report.mode,
        "mode_reason": report.reason,
        "drops_merged": len(report.merged),
        "parts": len(manifest["parts"]),
        "parts_rewritten": report.rewritten_parts,
        "parts_reflagged": report.reflagged_parts,
        "drops_held_back": len(held_back),
        **({"status": NO_DATA} if totals["rows"] == 0 else {}),
        **{k: totals[k] for k in ("before_signup", "unknown_customer", "unknown_product", "purchases", "first_date",
                                  "last_date")},
    })
    yield _accounting_check(report, "clean_sessions")
    yield dg.AssetCheckResult(
        check_name="sessions_of_unknown_customers",
        passed=unknown_customers == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{unknown_customers:,} sessions reference a customer_id not in clean_customers (kept, flagged)",
        metadata={"sessions": unknown_customers},
    )
    yield _held_back_check(held_back)


def read_quarantine_accounting(settings: EcomSettings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per-file accounting, counts by reason and file) from what the raw partitions wrote."""
    root = settings.folder("quarantine")
    files = [json.loads(p.read_text()) for p in sorted(root.glob("*/*.json"))]
    per_file = pl.DataFrame(files, schema={"kind": pl.String, "source_file": pl.String, "rows_in": pl.Int64,
                                           "clean": pl.Int64, "quarantined": pl.Int64, "duplicate": pl.Int64})
    parquet = sorted(root.glob("*/*.parquet"))
    if parquet:
        reasons = (
            pl.concat([pl.scan_parquet(p).select("source_file", "reason").with_columns(kind=pl.lit(p.parent.name))
                       for p in parquet])
            .group_by("kind", "source_file", "reason").agg(pl.len().cast(pl.Int64).alias("rows"))
            .sort("rows", descending=True).collect()
        )
    else:
        reasons = pl.DataFrame(schema={"kind": pl.String, "source_file": pl.String, "reason": pl.String,
                                       "rows": pl.Int64})
    return per_file, reasons


@dg.asset(
    group_name="clean",
    owners=[OWNER],
    kinds={"polars"},
    deps=[clean_customers, clean_sessions],
    tags=REFRESH_PER_DROP,
    description="Quarantined rows counted by reason and file, plus every file's row accounting "
    "(rows in = clean + quarantined + duplicate). The rows themselves are in quarantine/<kind>/.",
    metadata=column_schema({"kind": "string", "source_file": "string", "reason": "string", "rows": "int64"}),
)
def quarantine_summary(settings: EcomSettings) -> dg.Output:
    per_file, reasons = read_quarantine_accounting(settings)
    return dg.Output(reasons, metadata={
        "files": per_file.height,
        "rows_in": int(per_file["rows_in"].sum()),
        "quarantined": int(per_file["quarantined"].sum()),
        "duplicate": int(per_file["duplicate"].sum()),
        "by_reason": dg.MetadataValue.md(md_table(reasons)),
        "per_file": dg.MetadataValue.md(md_table(per_file, max_rows=50)),
        "dagster/row_count": reasons.height,
    })
