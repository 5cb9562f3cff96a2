"""`clean_customers`, `clean_sessions`, `quarantine_summary`: the validated tables every other
domain builds on, rebuilt by `drop_refresh_job` whenever a drop lands."""

import json

import dagster as dg
import polars as pl

from ecom_assets.automation import REFRESH_PER_DROP
from ecom_assets.clean.store import merge_sessions, table_stats
from ecom_assets.clean.tables import (EVENT_CONTENT, RowAccounting, build_clean_customers, distinct_events,
                                      latest_per_order)
from ecom_assets.ingest.events import sessionise_across_drops
from ecom_assets.ingest.orders import (REFUND_COLUMN, currency_problem, file_currencies, money_currencies,
                                       unnamed_currency_files, unnamed_currency_note, with_refund_flags)
from ecom_assets.io import Location, StoredParts, scan_parquet
from ecom_assets.ingest.assets import (PROVENANCE, RAW_ASSETS, RAW_COLUMNS, SESSION_ASSETS, SESSION_DETAIL_COLUMNS,
                                      raw_sessions, unaccounted_drops)
from ecom_assets.ingest.parse import reason_rule
from ecom_assets.ingest.partitions import PARTITIONS, file_name_of
from ecom_assets.metadata import NO_DATA, column_schema, md_table
from ecom_assets.schemas import CleanEvents, CleanOrderLines, empty_frame
from ecom_assets.settings import EcomSettings

OWNER = "team:data-platform"
ALL_DROPS = dg.AllPartitionMapping()
ACCOUNTING_DESCRIPTION = ("rows from every drop = rows in the table + duplicates across files + rows superseded by "
                          "a later drop (+ for clean_sessions, session parts of several events drops merged into one "
                          "session). Blocking: a table that lost a row is not built upon.")
PROVENANCE_COLUMNS = {k: v for k, v in PROVENANCE.items() if k != "ingested_at"}


HELD_BACK_CHECK = "every_drop_accounted"
HELD_BACK_DESCRIPTION = ("fails when a drop is held back because its row accounting does not add up (its own blocking "
                         "check failed) or its stored table lacks rows it counted, or (clean_sessions) when an orders / "
                         "events drop's lines are stored without its sessions; the other drops are still built")


def _raw_files(context: dg.AssetExecutionContext, kind: str, assets: dict = RAW_ASSETS) -> dict[str, Location]:
    """partition key -> stored raw table, for every drop of `kind` ingested so far."""
    partitions = context.instance.get_dynamic_partitions(PARTITIONS[kind].name)
    return context.resources.io_manager.partition_files(assets[kind].key, partitions)


def _session_drops(context: dg.AssetExecutionContext) -> tuple[dict[str, Location], dict[str, str]]:
    """(partition key -> session rows, held-back drops) over the sessions, orders and events drops."""
    raw = _raw_files(context, "sessions")
    held_back = _held_back(context, "sessions", raw)
    for kind, sessions in SESSION_ASSETS.items():
        derived = _raw_files(context, kind, SESSION_ASSETS)
        raw |= derived
        held_back |= _held_back(context, kind, derived, rows_are_lines=False)
        for key in sorted(_raw_files(context, kind).keys() - derived.keys()):
            # its lines are stored but its ingest run stopped before their sessions: never a silent gap
            problem = (f"{file_name_of(key)}: {RAW_ASSETS[kind].key.to_user_string()} is stored but "
                       f"{sessions.key.to_user_string()} is not (its ingest run did not complete; the next "
                       f"`ecom-assets run` or landing sensor tick finishes it)")
            context.log.error(f"not in clean_sessions: {problem}")
            held_back[key] = problem
    return raw, held_back


def _held_back(context: dg.AssetExecutionContext, kind: str, raw: dict[str, Location],
               rows_are_lines: bool = True) -> dict[str, str]:
    held_back = unaccounted_drops(context.resources.settings, kind, raw, rows_are_lines)
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


CURRENCY_CHECK = "one_currency"
CURRENCY_DESCRIPTION = (
    "fails when the money of the orders and events drops is in more than one currency across files (order lines, "
    "return lines and purchase events each carry their file's reporting currency): order and event purchases become "
    "purchased sessions whose purchase_amount revenue adds, and money is never converted. Here, not on "
    "clean_order_lines and clean_events: each sees one source and would pass EUR orders beside USD events. Money-"
    "carrying files that name no currency (a sessions export with purchases, an events or orders export without a "
    "currency column) beside files that do cannot be checked: the check names them (metadata "
    "`files_naming_no_currency`) and says their amounts are assumed to be in the others' currency")


def _money_rows(orders: list[Location], events: list[Location], sessions: list[Location]) -> pl.DataFrame:
    """Distinct (source_file, currency) of the money-carrying rows of stored raw_orders, raw_events and
    raw_sessions partitions: order lines (purchases and returns: net revenue subtracts refunds), purchase events,
    purchased sessions (a sessions export names no currency). A constant column per file, nearly free to scan; an
    events drop stored before events kept a currency names none."""
    money = [file_currencies(scan_parquet(paths), rows)
             for paths, rows in ((orders, pl.lit(True)), (events, pl.col("event_type") == "purchase"),
                                 (sessions, pl.col("purchase_made"))) if paths]
    return (pl.concat(money).collect() if money
            else pl.DataFrame(schema={"source_file": pl.String, "currency": pl.String}))


def _currency_check(orders: list[Location], events: list[Location], sessions: list[Location]) -> dg.AssetCheckResult:
    """`one_currency` over stored raw_orders, raw_events and raw_sessions partitions (`_money_rows`)."""
    money = _money_rows(orders, events, sessions)
    problem = currency_problem(money)
    found, unnamed = list(money_currencies(money)), unnamed_currency_files(money)
    return dg.AssetCheckResult(
        check_name=CURRENCY_CHECK, passed=problem is None, severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(filter(None, [
            problem or (f"every order line and purchase event with a currency is in {found[0]}" if found
                        else "no orders or events drop names a currency"), unnamed_currency_note(money)])),
        metadata={"currencies": ", ".join(found) or "not given",
                  "files_naming_a_currency": money.filter(pl.col("currency").is_not_null())["source_file"].n_unique(),
                  "files_naming_no_currency": ", ".join(unnamed) or "none"})


def _merge_metadata(dedup: RowAccounting) -> dict:
    return {
        "rows_from_drops": dedup.rows_from_drops,
        "duplicates_across_files": dedup.duplicates_across_files,
        "superseded_by_later_drop": dedup.superseded,
        "merged_across_files": dedup.merged_across_files,
        "dagster/row_count": dedup.rows,
    }


def _accounting_check(dedup: RowAccounting, table: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name="rows_accounted_for",
        passed=dedup.accounted,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(f"{dedup.rows_from_drops:,} rows from the drops = {dedup.rows:,} in {table} + "
                     f"{dedup.duplicates_across_files:,} duplicates across files + {dedup.superseded:,} superseded"
                     + (f" + {dedup.merged_across_files:,} session parts merged across files"
                        if dedup.merged_across_files else "")),
        metadata=_merge_metadata(dedup),
    )


def _unknown_customers_check(unknown_customers: int, customers_dropped: bool) -> dg.AssetCheckResult:
    """WARN when sessions name customers missing from the customers drops. An orders- or events-only shop
    never drops a customers file: every session would be "unknown", so the check would only be noise."""
    if not customers_dropped:
        description = ("no customers file dropped: customers are known only from their orders/sessions "
                       f"({unknown_customers:,} sessions flagged unknown_customer)")
    else:
        description = f"{unknown_customers:,} sessions reference a customer_id not in clean_customers (kept, flagged)"
    return dg.AssetCheckResult(
        check_name="sessions_of_unknown_customers",
        passed=unknown_customers == 0 or not customers_dropped,
        severity=dg.AssetCheckSeverity.WARN,
        description=description,
        metadata={"sessions": unknown_customers, "customers_files": "yes" if customers_dropped else "none dropped"},
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
    deps=[dg.AssetDep(raw_sessions, partition_mapping=ALL_DROPS),
          *[dg.AssetDep(asset, partition_mapping=ALL_DROPS) for asset in SESSION_ASSETS.values()],
          # read back where a session continues across events drops (clean/store.py), and for their currency
          dg.AssetDep(RAW_ASSETS["events"], partition_mapping=ALL_DROPS),
          # read back for the orders a drop withdraws (refunded or cancelled as a whole since an earlier export),
          # and for their currency
          dg.AssetDep(RAW_ASSETS["orders"], partition_mapping=ALL_DROPS)],
    required_resource_keys={"io_manager", "settings"},
    tags=REFRESH_PER_DROP,
    description=(
        "One row per session across every sessions drop, every order of an orders drop and every session of an "
        "events drop (each part validated with pandera `CleanSessions`), "
        "stored as one parquet part per drop under `warehouse/clean_sessions/`. A new drop is merged against "
        "the stored parts (only the ids it shares with them are read back); the latest version of a "
        "session_id wins, a re-delivered identical row is a counted duplicate; an order a later orders drop "
        "restates as refunded or cancelled as a whole loses its earlier purchased session (superseded). A session "
        "whose events came in several events drops (same export session_id, or a 30-minute-gap session continued "
        "across a file cut, in either arrival order) is one row made again from all its events — start = earliest, duration to the "
        "latest, views summed, flags OR-ed, amount summed; the folded-in parts count as merged_across_files. "
        "An order in both the orders export and the tracker's purchase events counts once: the orders export is the "
        "record of money (discounts, refunds, returns), so the order's own session keeps the purchase and revenue, "
        "and an events session whose purchase events name that order id gets `purchase_in_orders` (its conversion) "
        "with that purchase's value and purchase taken out of purchase_amount / purchase_made (a purchase event "
        "without an order id, or of an order the orders data does not hold, counts as before), in either arrival "
        "order; metadata `event_sessions_purchase_in_orders` / `event_amount_in_orders` count what was matched. "
        "Flags: `before_signup` (dated "
        "before the customer's signup_date) and `unknown_customer` (id not in clean_customers). Empty or "
        "'Unknown' products are the category 'unknown'. Rebuilt from scratch only when a stored drop was "
        "re-ingested; metadata `mode` says which happened."
    ),
    metadata=column_schema({
        **RAW_COLUMNS["sessions"],
        **SESSION_DETAIL_COLUMNS,
        "purchase_in_orders": "bool - an events session whose purchase events name an order of the orders data: it "
                              "converted, but that purchase and its money are counted on the order's session "
                              "(purchase_made / purchase_amount here hold only its other purchases)",
        "before_signup": "bool - session dated before the customer's signup_date",
        "unknown_customer": "bool - customer_id not in clean_customers",
        **PROVENANCE_COLUMNS,
    }),
    check_specs=[
        dg.AssetCheckSpec("rows_accounted_for", asset="clean_sessions", blocking=True,
                          description=ACCOUNTING_DESCRIPTION),
        dg.AssetCheckSpec("sessions_of_unknown_customers", asset="clean_sessions",
                          description="warns when sessions reference customers not (yet) in clean_customers; "
                          "passes, saying so, while no customers file has been dropped (orders- or events-only shops "
                          "know their customers only from their orders/sessions)"),
        dg.AssetCheckSpec(HELD_BACK_CHECK, asset="clean_sessions", description=HELD_BACK_DESCRIPTION),
        dg.AssetCheckSpec(CURRENCY_CHECK, asset="clean_sessions", description=CURRENCY_DESCRIPTION),
    ],
)
def clean_sessions(context: dg.AssetExecutionContext, clean_customers: pl.DataFrame):
    io_manager = context.resources.io_manager
    raw, held_back = _session_drops(context)
    parts = StoredParts(io_manager.dataset_dir(context.asset_key))
    events, orders = _raw_files(context, "events"), _raw_files(context, "orders")
    report = merge_sessions(parts, {k: p for k, p in raw.items() if k not in held_back}, clean_customers,
                            events=events, orders=orders)
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
                                  "last_date", "event_sessions_purchase_in_orders", "event_amount_in_orders")},
    })
    yield _accounting_check(report, "clean_sessions")
    yield _unknown_customers_check(unknown_customers, customers_dropped=bool(_raw_files(context, "customers")))
    yield _held_back_check(held_back)
    yield _currency_check(*([p for k, p in drops.items() if k not in held_back]
                            for drops in (orders, events, _raw_files(context, "sessions"))))


def _drops_of(context: dg.AssetExecutionContext, kind: str, rows: pl.DataFrame, model) -> tuple[pl.DataFrame, dict]:
    """The union of a line-level kind's drops (typed, or empty with the model's columns) without held-back drops."""
    held_back = _held_back(context, kind, _raw_files(context, kind))
    if rows.width == 0:
        return empty_frame(model), held_back
    # drops stored by an earlier version lack the optional columns added since (events: order_id, order_amount)
    added = {name: dtype for name, dtype in empty_frame(model).schema.items() if name not in rows.columns}
    rows = rows.with_columns(pl.lit(None, dtype).alias(name) for name, dtype in added.items())
    return rows.filter(~pl.col("source_file").is_in(list(held_back))).select(list(model.to_schema().columns)), held_back


def _order_lines(context: dg.AssetExecutionContext, raw_orders: pl.DataFrame, returns: bool, table: str):
    rows, held_back = _drops_of(context, "orders", with_refund_flags(raw_orders), CleanOrderLines)
    content = [c for c in CleanOrderLines.to_schema().columns if c not in ("source_file", "line", "ingested_at")]
    # an order's current version is decided over both tables' lines: a later refunded export supersedes paid lines
    dedup = latest_per_order(rows, content, table=pl.col("is_return") == returns)
    lines = CleanOrderLines.validate(dedup.kept.sort("order_time", "order_id", "line"))
    amount = float(lines["line_amount"].abs().sum())  # a refunded line keeps its positive amount
    yield dg.Output(lines, metadata={
        **_merge_metadata(dedup),
        "orders": lines["order_id"].n_unique(),
        "customers": lines["customer_id"].n_unique(),
        ("returned_amount" if returns else "line_revenue"): round(amount, 2),
        **({"refunded_amount": round(float(lines.filter("is_refund")["line_amount"].abs().sum()), 2),
            "never_revenue_amount": round(float(lines.filter(~pl.col("is_refund"))["line_amount"].abs().sum()), 2)}
           if returns else {}),
        "drops_held_back": len(held_back),
        **({"by_reason": dg.MetadataValue.md(md_table(lines.group_by("return_reason").len().sort("len", descending=True)))}
           if returns else {}),
    })
    yield _accounting_check(dedup, table)
    yield _held_back_check(held_back)


def _line_checks(table: str) -> list[dg.AssetCheckSpec]:
    return [dg.AssetCheckSpec("rows_accounted_for", asset=table, blocking=True, description=ACCOUNTING_DESCRIPTION),
            dg.AssetCheckSpec(HELD_BACK_CHECK, asset=table, description=HELD_BACK_DESCRIPTION)]


ORDER_LINE_SCHEMA = column_schema({**RAW_COLUMNS["orders"], **REFUND_COLUMN, **PROVENANCE})
ORDER_LINES_IN = {"raw_orders": dg.AssetIn(partition_mapping=ALL_DROPS)}


def _order_lines_asset(name: str, returns: bool, description: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=name, group_name="clean", owners=[OWNER], kinds={"polars", "pandera"}, ins=ORDER_LINES_IN,
        required_resource_keys={"io_manager", "settings"}, tags=REFRESH_PER_DROP,
        description=description, metadata=ORDER_LINE_SCHEMA, check_specs=_line_checks(name),
    )
    def lines_asset(context: dg.AssetExecutionContext, raw_orders: pl.DataFrame):
        yield from _order_lines(context, raw_orders, returns=returns, table=name)

    return lines_asset


clean_order_lines = _order_lines_asset("clean_order_lines", False, (
    "Purchased order lines of every orders drop (validated with pandera `CleanOrderLines`). An order "
    "re-exported in a later drop replaces its earlier lines as a whole, here and in clean_returns alike (an order "
    "refunded in full since keeps no purchased line); refund lines exported alone later add to it. An identical "
    "earlier line is a counted duplicate, any other superseded. Return and cancellation lines are in "
    "clean_returns, never here."))
clean_returns = _order_lines_asset("clean_returns", True, (
    "Return and cancellation lines of every orders drop: a cancelled/refunded/returned or not (yet) paid order status, negative "
    "quantity or amount, or the file's declared `return_when` rule (sources.yaml; e.g. order ids starting with C). "
    "Never purchases. `is_refund` lines (negative or declared lines of an order not cancelled/refunded as a whole, "
    "e.g. the -1 line of a partially_refunded order) are money given back for revenue counted earlier: net revenue "
    "subtracts them. The other lines belong to a cancelled/refunded order, never were revenue and are kept for the "
    "record only. Same replay rule as clean_order_lines."))


@dg.asset(
    group_name="clean", owners=[OWNER], kinds={"polars", "pandera"},
    ins={"raw_events": dg.AssetIn(partition_mapping=ALL_DROPS)},
    required_resource_keys={"io_manager", "settings"}, tags=REFRESH_PER_DROP,
    description=(
        "Every tracked event of every events drop, each in a session (the export's session_id together with the "
        "customer's — GA4's ga_session_id is unique per user only —, else a customer's "
        "session ends after 30 minutes without an event, drawn again over every drop holding that customer's "
        "events, so a session cut by the end of a file keeps one id); validated with pandera `CleanEvents`. An "
        "identical event delivered again in a later drop is a counted duplicate across files. event_type outside "
        "view / cart / remove_from_cart / purchase is kept as `other` (its name in event_name)."
    ),
    metadata=column_schema({**RAW_COLUMNS["events"], **PROVENANCE}), check_specs=_line_checks("clean_events"),
)
def clean_events(context: dg.AssetExecutionContext, raw_events: pl.DataFrame):
    rows, held_back = _drops_of(context, "events", raw_events, CleanEvents)
    dedup = distinct_events(sessionise_across_drops(rows), EVENT_CONTENT)
    events = CleanEvents.validate(dedup.kept)
    counts = dict(events.group_by("event_type").len().iter_rows())
    yield dg.Output(events, metadata={
        **_merge_metadata(dedup),
        **{f"events_{t}": counts.get(t, 0) for t in ("view", "cart", "remove_from_cart", "purchase", "other")},
        "sessions": events["session_id"].n_unique(),
        "customers": events["customer_id"].n_unique(),
        "drops_held_back": len(held_back),
    })
    yield _accounting_check(dedup, "clean_events")
    yield _held_back_check(held_back)


SUMMARY_SCHEMA = {"kind": pl.String, "source_file": pl.String, "rule": pl.String, "rows": pl.Int64, "example": pl.String}


def read_quarantine_accounting(settings: EcomSettings) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(per-file accounting, counts by rule and file) from what the raw partitions wrote.

    A rule is a reason without the values it ends with (`parse.reason_rule`), so one rule broken by
    many different values is one row: `rows` counts them, `example` is one full reason."""
    root = settings.folder("quarantine")
    files = [json.loads(p.read_text()) for p in sorted(root.glob("*/*.json"))]
    per_file = pl.DataFrame(files, schema={"kind": pl.String, "source_file": pl.String, "rows_in": pl.Int64,
                                           "clean": pl.Int64, "quarantined": pl.Int64, "duplicate": pl.Int64})
    parquet = sorted(root.glob("*/*.parquet"))
    if parquet:
        reasons = (
            pl.concat([pl.scan_parquet(p).select("source_file", "line", "reason").with_columns(kind=pl.lit(p.parent.name))
                       for p in parquet])
            .group_by("kind", "source_file", reason_rule(pl.col("reason")).alias("rule"))
            .agg(pl.len().cast(pl.Int64).alias("rows"), pl.col("reason").sort_by("line").first().alias("example"))
            .sort(["rows", "kind", "source_file", "rule"], descending=[True, False, False, False]).collect()
        )
    else:
        reasons = pl.DataFrame(schema=SUMMARY_SCHEMA)
    return per_file, reasons


@dg.asset(
    group_name="clean",
    owners=[OWNER],
    kinds={"polars"},
    deps=[clean_customers, clean_sessions, clean_order_lines, clean_returns, clean_events],
    tags=REFRESH_PER_DROP,
    description="Quarantined rows counted by rule and file (a rule is a reason without the value it names), plus "
    "every file's row accounting (rows in = clean + quarantined + duplicate). The rows themselves, each with its "
    "full reason, are in quarantine/<kind>/.",
    metadata=column_schema({"kind": "string", "source_file": "string",
                            "rule": "string - the reason without its values (e.g. \"negative purchase_amount\")",
                            "rows": "int64", "example": "string - one full reason (the first line's)"}),
)
def quarantine_summary(settings: EcomSettings) -> dg.Output:
    per_file, reasons = read_quarantine_accounting(settings)
    return dg.Output(reasons, metadata={
        "files": per_file.height,
        "rows_in": int(per_file["rows_in"].sum()),
        "quarantined": int(per_file["quarantined"].sum()),
        "duplicate": int(per_file["duplicate"].sum()),
        "by_rule": dg.MetadataValue.md(md_table(reasons)),
        "per_file": dg.MetadataValue.md(md_table(per_file, max_rows=50)),
        "dagster/row_count": reasons.height,
    })
