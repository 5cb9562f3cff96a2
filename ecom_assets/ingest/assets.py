"""`raw_customers`, `raw_sessions`, `raw_campaigns`, `raw_orders`, `raw_events`: one partition per
dropped file; `raw_order_sessions` / `raw_event_sessions`: the sessions each orders / events drop
becomes (same partition), merged into `clean_sessions` like a sessions drop.

Each partition reads its file from `landing/` (or, when re-materialized, from `archive/`),
splits the rows into clean / quarantined / duplicate, writes the quarantined rows with their
reasons to `quarantine/<kind>/`, moves the original to `archive/` byte-identical and checks that
`rows_in == clean + quarantined + duplicate`.
"""

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import polars as pl

from ecom_assets.ingest import events as event_kind
from ecom_assets.ingest import orders as order_kind
from ecom_assets.ingest.landing import (HASHED_TAG, REASON_SUFFIX, is_ignored, move_to_archive, reject, sha256_of,
                                        stat_identity)
from ecom_assets.ingest.parse import (CONFLICT_REASON, RULES, WHOLE_RECORD_REASON, FileRejected, ParsedDrop, parse_drop,
                                      reason_rule)
from ecom_assets.ingest.sources import SourcesError, load_sources, spec_for
from ecom_assets.ingest.partitions import PARTITIONS, archive_name, file_name_of
from ecom_assets.io import (PARQUET_STATISTICS, Location, WrittenParquet, parquet_rows, partition_file_name,
                            scan_parquet, write_json_atomic, write_parquet_atomic)
from ecom_assets.metadata import column_schema, md_table
from ecom_assets.schemas import row_checks
from ecom_assets.settings import EcomSettings

ACCOUNTING_CHECK = "rows_accounted_for"
SHARE_CHECK = "quarantine_share_low"
SCHEMA_RULES_KEY = "clean_schema_rules"  # in the accounting record: rows were judged by the clean schema at ingest
OWNER = "team:data-platform"

RAW_COLUMNS = {
    "customers": {
        "customer_id": "string - customer key (required)",
        "age": "int64 - null when missing or outside 10-120",
        "age_out_of_range": "bool - an age was given but was not a whole number in 10-120",
        "gender": "string - nullable",
        "location": "string - nullable",
        "signup_date": "date - nullable (the calendar date of a date-time)",
    },
    "sessions": {
        "session_id": "string - session key (required); an events session's is `<customer_id>#<export session id>` "
                      "(an export's id is unique per user only) or `<customer_id>@<first event time>`, an order's its "
                      "order_id",
        "customer_id": "string - required",
        "session_date": "date - the calendar date written in the export, not in the future",
        "session_start": "datetime (UTC) - the instant, when the export gave a time; else null",
        "product_viewed": "string - category; empty/Unknown -> 'unknown'",
        "browsing_time_sec": "float64 - nullable (purchase logs have none), >= 0",
        "purchase_made": "bool",
        "purchase_amount": "float64 - >= 0; 0 when nothing was bought",
        "added_to_cart": "bool - null when the optional column is absent",
    },
    "campaigns": {
        "campaign_id": "string - required",
        "name": "string",
        "start_date": "date",
        "end_date": "date - >= start_date",
        "channel": "string - nullable",
    },
    "orders": order_kind.ORDER_LINE_COLUMNS,
    "events": event_kind.EVENT_COLUMNS,
}
SESSION_DETAIL_COLUMNS = {
    "session_start": "datetime[us, UTC] - first event / order time; null for session exports without one",
    "page_views": "int64 - view events in the session; null unless the session comes from events",
    "product_views": "int64 - view events of a product; null unless from events",
    "categories_viewed": "int64 - distinct categories viewed; null unless from events",
    "units_purchased": "float64 - items bought in the order (sum of its purchased lines' quantity); null unless the "
                       "session comes from orders",
    "purchase_orders": "list[struct{order_id: string, amount: float64}] - the session's purchase events per order id "
                       "(null id: events without one) and their value; null unless the session comes from events and "
                       "has a purchase event",
}
# Per-kind step after the row rules: what a line-level kind needs before it is stored.
FINISH = {
    "orders": lambda clean, spec: order_kind.mark_returns(clean, spec.return_when if spec else None),
    "events": lambda clean, spec: event_kind.sessionise(clean),
}
PROVENANCE = {
    "source_file": "string - partition key of the drop (file name + content hash)",
    "line": "int64 - physical line in that file (header = line 1)",
    "ingested_at": "datetime - when the partition was ingested (later drops win on id conflicts)",
}


def accounting_problem(accounting: dict) -> str | None:
    """None when every input row has exactly one fate, else what is off."""
    fates = accounting["clean"] + accounting["quarantined"] + accounting["duplicate"]
    if fates == accounting["rows_in"]:
        return None
    return (f"{accounting['source_file']}: rows_in {accounting['rows_in']:,} != clean {accounting['clean']:,} + "
            f"quarantined {accounting['quarantined']:,} + duplicate {accounting['duplicate']:,} "
            f"({accounting['rows_in'] - fates:+,} rows unaccounted)")


def unaccounted_drops(settings: EcomSettings, kind: str, stored: dict[str, Location],
                      rows_are_lines: bool = True) -> dict[str, str]:
    """partition key -> why the clean tables must not build on it: its row accounting does not add
    up, or its stored table does not hold the clean rows the accounting counted. Read from the files
    the partition wrote, so a drop whose blocking check failed is held back in every later run too.
    `rows_are_lines=False`: `stored` holds what the lines became (sessions of an orders drop), so
    only the accounting itself is checked."""
    held_back = {}
    for key, path in stored.items():
        record = _accounting_record(settings, kind, key)
        if not record.exists():
            held_back[key] = f"{file_name_of(key)}: no accounting record at {record}"
            continue
        accounting = json.loads(record.read_text())
        problem = accounting_problem(accounting)
        rows = parquet_rows(path) if rows_are_lines else accounting["clean"]
        if problem is None and rows != accounting["clean"]:
            problem = f"{file_name_of(key)}: the stored table holds {rows:,} rows, the accounting counted {accounting['clean']:,} clean"
        if problem is None and rows_are_lines and not accounting.get(SCHEMA_RULES_KEY):
            problem = _breaks_clean_schema(kind, key, path)
        if problem:
            held_back[key] = problem
    return held_back


def _breaks_clean_schema(kind: str, key: str, path: Location) -> str | None:
    """For a drop ingested before ingest applied the clean schema's row rules (its accounting lacks
    SCHEMA_RULES_KEY): which rules its stored rows break, if any. Such a drop is held back instead of
    failing the clean table's validation in every build; re-materializing its partition re-judges it."""
    model = RULES[kind][2]
    stored = scan_parquet(path)
    present = set(stored.collect_schema().names())
    rules = [r for r in row_checks(model) if r.column in present] if model else []
    counts = [frame.item() for frame in pl.collect_all(
        [r.broken(stored.select(r.column), "broken").select(pl.col("broken").sum()) for r in rules])]
    broken = [f"{r.column} {r.name}: {n:,} rows" for r, n in zip(rules, counts, strict=True) if n]
    if not broken:
        return None
    return (f"{file_name_of(key)}: ingested before rows were judged by the clean schema and its stored rows break it "
            f"({'; '.join(broken)}); re-materialize partition {key} to quarantine them")


def locate_drop(settings: EcomSettings, key: str, hashed_file: str | None = None) -> tuple[Path, bool]:
    """(path, is_in_landing): a file in landing/ (or a sub-folder of it) whose content still matches the
    key, else the archived copy. Files of the same name in several sub-folders are told apart by hash.

    `hashed_file`: the run's HASHED_TAG, the identity of the file the tick hashed into this key; while
    that file's identity is unchanged it is the drop, without hashing it a second time (600 MB: ~1 s)."""
    name, digest = file_name_of(key), key.rsplit("__", 1)[1]
    if hashed_file:
        below, *identity = json.loads(hashed_file)
        landing = settings.landing / below
        try:
            if Path(below).name == name and stat_identity(landing) == identity:
                return landing, True
        except OSError:  # moved or deleted since the tick: found below, or in archive/
            pass
    for landing in dict.fromkeys([settings.landing / name, *sorted(settings.landing.rglob(name))]):
        if (landing.is_file() and not is_ignored(landing.relative_to(settings.landing))
                and sha256_of(landing).startswith(digest)):
            return landing, True
    archived = settings.archive / archive_name(key)
    if archived.exists():
        return archived, False
    raise dg.Failure(
        f"drop {key}: {name} is neither in {settings.landing} with this content nor in {settings.archive}"
    )


def quarantine_paths(settings: EcomSettings, kind: str, key: str) -> tuple[Path, Path]:
    """The drop's quarantined rows and accounting, named by its partition key (`sessions_daily.csv__ab12…
    .parquet`): every drop of a re-used file name keeps its own."""
    stem = settings.folder("quarantine") / kind / partition_file_name(key)
    return stem.with_name(stem.name + ".parquet"), stem.with_name(stem.name + ".json")


def _accounting_record(settings: EcomSettings, kind: str, key: str) -> Path:
    """The drop's accounting file; one written before records were named by the full key (`sessions.json`
    for `sessions.csv__ab12…`) still counts when it names this drop."""
    record = quarantine_paths(settings, kind, key)[1]
    legacy = (settings.folder("quarantine") / kind / partition_file_name(key)).with_suffix(".json")
    if not record.exists() and legacy.exists() and json.loads(legacy.read_text()).get("source_file") == key:
        return legacy
    return record


def _reasons(parsed: ParsedDrop) -> pl.DataFrame:
    """Quarantined rows per rule (the reason without its values), with the first line and its full reason."""
    return (parsed.quarantine.sort("line").group_by(reason_rule(pl.col("reason")).alias("rule"), maintain_order=True)
            .agg(pl.len().alias("rows"), pl.col("line").first().alias("first_line"), pl.col("reason").first().alias("example"))
            .sort("rows", descending=True, maintain_order=True))


def quarantine_share(quarantine: pl.DataFrame, rows_in: int, kind: str, limit: float) -> tuple[bool, str, dict]:
    """(passed, description, metadata) of the WARN check on one drop's quarantined share.

    `quarantine`: the drop's quarantined rows (`reason` column); `limit`: the share in [0, 1] above which
    the check fails. Reasons are grouped by rule (`parse.reason_rule`: the values they end with left out), so
    "customer_id repeated … : '17850'" and "customer_id repeated … : '13047'" are one rule.
    When most quarantined rows repeat their id with other content, the file is very likely an
    order-line export (one row per line item) named like a sessions/customers file: the hint says so."""
    share = quarantine.height / rows_in if rows_in else 0.0
    rules = (quarantine.lazy()
             .select(reason_rule(pl.col("reason")).alias("rule"))
             .group_by("rule").len().sort(["len", "rule"], descending=[True, False]).collect())
    top = "; ".join(f"{rule} ({n:,} rows)" for rule, n in rules.head(3).iter_rows())
    text = f"{quarantine.height:,} of {rows_in:,} rows ({share:.0%}) quarantined"
    if share <= limit:
        return True, f"{text}, at most {limit:.0%}", {"quarantined_share": round(share, 4)}
    conflicts = quarantine["reason"].str.contains(CONFLICT_REASON, literal=True).sum()
    hint = (" — most rows repeat their id with other content: the file looks like an order-line export (one row "
            "per line item); declare it `kind: orders` in sources.yaml (columns mapped to order_id, customer_id, "
            "order_time, product_id, quantity, unit_price)"
            if kind != "orders" and conflicts > quarantine.height / 2 else "")
    return False, f"{text}, above {limit:.0%}; top reasons: {top}{hint}", {
        "quarantined_share": round(share, 4), "top_reasons": top}


def _currencies(clean: pl.DataFrame) -> str:
    """The currencies a drop's money rows carry (order lines; purchase events): its reporting currency, or none."""
    return ", ".join(sorted(clean["currency"].drop_nulls().unique())) or "not given"


def _kind_figures(kind: str, clean: pl.DataFrame, quarantine: pl.DataFrame) -> dict:
    """Key figures of a line-level drop: returns of an orders drop (its orders quarantined whole for one
    unreadable line, its lines without a product id keyed by their name), event types of an events drop; the
    currency of either's money."""
    if kind == "orders":
        whole = quarantine.filter(pl.col("reason").str.starts_with(WHOLE_RECORD_REASON))
        return {"return_lines": int(clean["is_return"].sum()), "orders": clean["order_id"].n_unique(),
                "orders_quarantined_whole": whole["order_id"].n_unique(),
                "lines_keyed_by_name": int(clean["product_id"].str.starts_with(order_kind.NAME_KEY).sum()),
                "currencies": _currencies(clean)}
    if kind == "events":
        # lazy queries over the columns they read (filtering the whole 10M-row frame for 'other' took ~3 s). The
        # number of sessions is raw_event_sessions' row count: a distinct count of 10M session ids here cost ~1 s
        events = clean.lazy()
        types, other, kinds = pl.collect_all([
            events.group_by("event_type").len(),
            events.filter(pl.col("event_type") == "other").select(pl.col("event_name").unique().head(20)),
            events.select(  # Segment's Order Completed without its products; visitors who never logged in
                order_level_purchases=((pl.col("event_type") == "purchase") & pl.col("product_id").is_null()).sum(),
                anonymous_events=pl.col("customer_id").str.starts_with(event_kind.ANONYMOUS).sum())])
        counts = dict(types.iter_rows())
        return {f"events_{t}": counts.get(t, 0) for t in event_kind.EVENT_TYPES} | {
            "other_event_names": ", ".join(sorted(other["event_name"])) or "none", "currencies": _currencies(clean)} | {
            name: int(value) for name, value in kinds.row(0, named=True).items()}
    return {}


def ingest_drop(settings: EcomSettings, kind: str, key: str, log=None,
                hashed_file: str | None = None) -> tuple[pl.DataFrame, dict, dict, tuple, "SessionsHandoff | None"]:
    """Ingest one partition: (typed rows, accounting, metadata, `quarantine_share` result, the sessions being
    derived from the rows for the kind's sessions step, or None for a kind without one). Moves the file
    out of landing. `hashed_file`: see `locate_drop`."""
    path, in_landing = locate_drop(settings, key, hashed_file)
    try:
        spec = spec_for(file_name_of(key), load_sources(settings.data_dir))
    except SourcesError as err:  # the file stays in landing: it is ingested once sources.yaml is fixed
        raise dg.Failure(f"{file_name_of(key)} not ingested: {err}") from err
    try:
        parsed = parse_drop(path, kind, key, spec=spec)
    except FileRejected as err:
        if in_landing:
            reject(path, settings, str(err), name=str(path.relative_to(settings.landing)), log=log)
        raise dg.Failure(f"{path.name} rejected: {err}") from err
    if kind in FINISH:
        parsed.clean = FINISH[kind](parsed.clean, spec)
    q_parquet, q_json = quarantine_paths(settings, kind, key)
    write_parquet_atomic(parsed.quarantine, q_parquet)
    accounting = {**parsed.accounting, "ingested_at": datetime.now(timezone.utc).isoformat(), SCHEMA_RULES_KEY: True}
    write_json_atomic(accounting, q_json)
    archived = move_to_archive(path, settings.archive, archive_name(key)) if in_landing else path
    if log is not None and parsed.quarantine.height:
        log.warning(f"{file_name_of(key)}: {parsed.quarantine.height:,} rows quarantined -> {q_parquet}")
    # hstack, not with_columns: that re-aligned the chunks of the batches judged apart (10M events: ~1.7 s)
    ingested_at = datetime.now(timezone.utc)
    rows = parsed.clean.hstack([pl.repeat(ingested_at, parsed.clean.height,
                                          dtype=pl.Datetime("us", "UTC"), eager=True).alias("ingested_at")])
    handoff = SessionsHandoff(settings, kind, key, rows, ingested_at) if kind in DERIVED_SESSIONS else None
    metadata = {
        "rows_in": parsed.rows_in,
        "clean": parsed.clean.height,
        "quarantined": parsed.quarantine.height,
        "duplicate": parsed.duplicates,
        "dagster/row_count": rows.height,
        "encoding": parsed.encoding,
        "notes": "; ".join(parsed.notes) or "none",
        **_kind_figures(kind, parsed.clean, parsed.quarantine),
        "quarantine_reasons": dg.MetadataValue.md(md_table(_reasons(parsed))),
        "quarantine_file": dg.MetadataValue.path(str(q_parquet)),
        "original": dg.MetadataValue.path(str(archived)),
    }
    share = quarantine_share(parsed.quarantine, parsed.rows_in, kind, settings.quarantine_share_warn)
    return rows, accounting, metadata, share, handoff


def _raw_asset(kind: str) -> dg.AssetsDefinition:
    name = f"raw_{kind}"

    @dg.asset(
        name=name,
        group_name="ingest",
        partitions_def=PARTITIONS[kind],
        owners=[OWNER],
        kinds={"polars", "csv"},
        description=(
            f"One partition per dropped `{kind}*.csv` / `.csv.gz` file, or a file `sources.yaml` declares as "
            f"{kind} (key = file name + content hash). Rows are typed and checked against the input contract "
            "(values read as declared in `sources.yaml`; metadata `encoding` and `notes` say how); bad rows go "
            "to `quarantine/` with a reason, exact in-file duplicates are counted, the original moves to "
            "`archive/` unchanged."
        ),
        # events partitions are read whole (clean_events, raw_event_sessions): no row-group statistics
        metadata=column_schema({**RAW_COLUMNS[kind], **PROVENANCE})
        | ({PARQUET_STATISTICS: False} if kind == "events" else {}),
        check_specs=[dg.AssetCheckSpec(ACCOUNTING_CHECK, asset=name, blocking=True,
                                       description="rows_in == clean + quarantined + duplicate for this file. "
                                       "Blocking: a drop that lost a row is not built upon."),
                     dg.AssetCheckSpec(SHARE_CHECK, asset=name,
                                       description="at most `quarantine_share_warn` (settings) of this file's rows "
                                       "quarantined; a failure names the top rules (WARN: the clean rows are kept)")],
    )
    def raw_drop(context: dg.AssetExecutionContext, settings: EcomSettings):
        rows, accounting, metadata, (share_ok, share_text, share_figures), handoff = ingest_drop(
            settings, kind, context.partition_key, context.log, context.run.tags.get(HASHED_TAG))
        yield dg.Output(rows, metadata=metadata)  # stored while the handoff thread derives the sessions
        if handoff is not None:
            handoff.wait(context.log)
        problem = accounting_problem(accounting)
        yield dg.AssetCheckResult(
            check_name=ACCOUNTING_CHECK,
            passed=problem is None,
            severity=dg.AssetCheckSeverity.ERROR,
            description=problem or "every row is clean, quarantined or a counted duplicate",
            metadata={k: accounting[k] for k in ("rows_in", "clean", "quarantined", "duplicate")}
            | {"partition": context.partition_key},
        )
        yield dg.AssetCheckResult(check_name=SHARE_CHECK, passed=share_ok, severity=dg.AssetCheckSeverity.WARN,
                                  description=share_text, metadata=share_figures | {"partition": context.partition_key})

    return raw_drop


REJECTS_CHECK = "no_rejected_files"
REJECT_COLUMNS = {"file": "string - the file as it was named below landing/",
                  "rejected_file": "string - where it is now: rejected/<stem>__<content hash>.<suffix>",
                  "reason": "string - why the whole file could not be ingested",
                  "time": "datetime - when it was rejected (UTC)"}


def read_rejects(settings: EcomSettings) -> pl.DataFrame:
    """Every reject still in rejected/ (one `.reason.txt` each: `<file>: <reason>`), newest first."""
    rows = []
    for note in settings.rejected.glob(f"*{REASON_SUFFIX}"):
        file, _, reason = note.read_text().strip().partition(": ")
        rows.append({"file": file, "rejected_file": note.name.removesuffix(REASON_SUFFIX), "reason": reason,
                     "time": datetime.fromtimestamp(note.stat().st_mtime, timezone.utc)})
    return pl.DataFrame(rows, schema={"file": pl.String, "rejected_file": pl.String, "reason": pl.String,
                                      "time": pl.Datetime("us", "UTC")}).sort("time", "file", descending=True)


def rejects_check(rejects: pl.DataFrame, asset_key: dg.AssetKey | None = None):
    """WARN while rejected/ holds a file: a whole file did not arrive, someone has to fix and re-drop it
    (then delete it from rejected/). With `asset_key`: an evaluation the sensor reports itself."""
    listed = "; ".join(f"{r['file']}: {r['reason']}" for r in rejects.head(10).iter_rows(named=True))
    fields = dict(check_name=REJECTS_CHECK, passed=rejects.is_empty(), severity=dg.AssetCheckSeverity.WARN,
                  description=f"{rejects.height} file(s) in rejected/: {listed}" if rejects.height
                  else "no file is waiting in rejected/",
                  metadata={"files": rejects.height})
    return dg.AssetCheckEvaluation(asset_key=asset_key, **fields) if asset_key else dg.AssetCheckResult(**fields)


@dg.asset(
    group_name="monitoring",  # beside the other on-call signals; the ingest group holds the per-drop partitions
    owners=[OWNER],
    kinds={"polars"},
    description=("Whole files that could not be ingested and wait in `rejected/`: file, reason, time. The WARN "
                 f"check `{REJECTS_CHECK}` fails while any is there; each reject also wrote a WARNING (file and "
                 "reason) and a `file_rejected` line in `alerts/alerts.jsonl`, and the landing sensor reports it on "
                 "this asset the moment it happens. Resolve by fixing the export, dropping it again and deleting "
                 "the file from `rejected/`."),
    metadata=column_schema(REJECT_COLUMNS),
    check_specs=[dg.AssetCheckSpec(REJECTS_CHECK, asset="landing_rejects",
                                   description="warns while a rejected file waits in rejected/")],
)
def landing_rejects(settings: EcomSettings):
    rejects = read_rejects(settings)
    yield dg.Output(rejects, metadata={"dagster/row_count": rejects.height,
                                       "rejects": dg.MetadataValue.md(md_table(rejects))})
    yield rejects_check(rejects)


raw_customers = _raw_asset("customers")
raw_sessions = _raw_asset("sessions")
raw_campaigns = _raw_asset("campaigns")
raw_orders = _raw_asset("orders")
raw_events = _raw_asset("events")
RAW_ASSETS = {"customers": raw_customers, "sessions": raw_sessions, "campaigns": raw_campaigns,
              "orders": raw_orders, "events": raw_events}

SESSION_SHAPED = {**RAW_COLUMNS["sessions"], **SESSION_DETAIL_COLUMNS, **PROVENANCE}
DERIVED_SESSIONS = {  # kind -> (pure function lines/events -> sessions, what one session is)
    "orders": (order_kind.order_sessions, "one purchased session per order (session_id = order_id; amount = sum of "
               "its positive lines; units_purchased = the items bought; product_viewed = the category, else product, with "
               "the largest line value). "
               "Orders made only of returns give no session."),
    "events": (event_kind.event_sessions, "one session per session_id (the export's, named with its customer, else "
               "30 minutes without an event end a customer's session): duration from timestamps, page/product "
               "views, categories viewed, cart and purchase flags, purchase_amount = sum of purchase events' price x "
               "quantity (an order-level purchase: its order_amount), purchase_orders = that amount per order id. A session "
               "continued in another events drop is made whole in clean_sessions from the events of both."),
}


HANDOFF = "handoff"  # data_dir folder: sessions a raw step derived from its lines in memory, for its sessions step


def handoff_path(settings: EcomSettings, kind: str, key: str, ingested_at: datetime) -> Path:
    """Where the raw step of drop `key` leaves the sessions it derived: named by partition and by the
    `ingested_at` of the lines it stored, so the sessions step takes only what was derived from the
    stored lines (a partition ingested again gets another name)."""
    stamp = ingested_at.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return _handoff_folder(settings, kind) / f"{partition_file_name(key)}@{stamp}.parquet"


def _handoff_folder(settings: EcomSettings, kind: str) -> Path:
    return settings.folder(HANDOFF) / f"raw_{kind[:-1]}_sessions"


def _clear_handoffs(settings: EcomSettings, kind: str, key: str, keep: Path | None = None) -> None:
    name = partition_file_name(key)
    for pattern in (f"{name}@*.parquet", f".taken-{name}@*.parquet"):  # also one a failed sessions step left
        for old in _handoff_folder(settings, kind).glob(pattern):
            if old != keep:
                old.unlink(missing_ok=True)


class SessionsHandoff:
    """The sessions of a line-level drop, derived in a thread from its rows still in memory while the raw
    step stores them, and left in `handoff_path` for the sessions step of the same partition.

    Why: the sessions step derived them by reading the stored lines back (10M events: ~1.5 s CPU of ~5 s)
    and encoded them again after the handoff file; a thread lets the group-by run beside the write (polars
    releases the GIL), which pays where the write leaves a core idle (on 2 busy cores both are CPU-bound
    and little overlaps). The handoff is only a shortcut: when it is missing (failed here, a step run
    elsewhere or resumed later) the sessions step derives the sessions from the stored lines, as before."""

    def __init__(self, settings: EcomSettings, kind: str, key: str, rows: pl.DataFrame, ingested_at: datetime):
        _clear_handoffs(settings, kind, key)
        self.path = handoff_path(settings, kind, key, ingested_at)
        self.error: Exception | None = None
        derive = DERIVED_SESSIONS[kind][0]

        def run() -> None:
            try:
                sessions = derive(rows).with_columns(ingested_at=pl.lit(ingested_at).cast(pl.Datetime("us", "UTC")))
                write_parquet_atomic(sessions, self.path)
            except Exception as err:  # noqa: BLE001 — reported by `wait`; the sessions step then derives them itself
                self.error = err

        self.thread = threading.Thread(target=run, name=f"sessions of {key}", daemon=True)
        self.thread.start()

    def wait(self, log=None) -> None:
        self.thread.join()
        if self.error is not None and log is not None:
            log.warning(f"sessions not handed to the sessions step ({self.error!r}): it derives them from the "
                        "stored lines")


def take_handoff(settings: EcomSettings, kind: str, key: str, ingested_at: datetime | None) -> Path | None:
    """The file of the sessions the raw step derived from the lines stored at `ingested_at`, moved aside for
    the IO manager to put in place (None when there is none); the partition's other handoffs are deleted."""
    path = handoff_path(settings, kind, key, ingested_at) if ingested_at is not None else None
    taken = None
    if path is not None and path.exists():
        taken = path.with_name(f".taken-{path.name}")
        os.replace(path, taken)
    _clear_handoffs(settings, kind, key, keep=taken)
    return taken


def _sessions_asset(kind: str) -> dg.AssetsDefinition:
    derive, what = DERIVED_SESSIONS[kind]
    upstream = RAW_ASSETS[kind]

    @dg.asset(
        name=f"raw_{kind[:-1]}_sessions",
        group_name="ingest",
        partitions_def=PARTITIONS[kind],
        owners=[OWNER],
        kinds={"polars"},
        ins={"lines": dg.AssetIn(upstream.key)},
        description=f"The sessions one `{kind}*.csv` drop becomes, merged into clean_sessions like a sessions "
        f"drop: {what}",
        metadata=column_schema(SESSION_SHAPED),
    )
    def derived(context: dg.AssetExecutionContext, settings: EcomSettings, lines: pl.LazyFrame) -> dg.Output:
        ingested_at = lines.select(pl.col("ingested_at").min()).collect().item()
        handed = take_handoff(settings, kind, context.partition_key, ingested_at)
        if handed is None:  # not handed over by the raw step: from the stored lines
            # a lazy scan: only the columns the sessions read are loaded (10M events: peak 3.2 -> 1.5 GiB, same CPU)
            sessions = derive(lines).with_columns(ingested_at=pl.lit(ingested_at).cast(pl.Datetime("us", "UTC")))
            figures = sessions.lazy()
        else:  # stored as written by the raw step; the figures read two of its columns
            figures = pl.scan_parquet(handed)
        rows, purchases, revenue = figures.select(pl.len(), pl.col("purchase_made").sum(),
                                                  pl.col("purchase_amount").sum()).collect().row(0)
        return dg.Output(sessions if handed is None else WrittenParquet(handed), metadata={
            "dagster/row_count": rows,
            "purchases": int(purchases or 0),
            "revenue": round(float(revenue or 0.0), 2),
        })

    return derived


raw_order_sessions = _sessions_asset("orders")
raw_event_sessions = _sessions_asset("events")
SESSION_ASSETS = {"orders": raw_order_sessions, "events": raw_event_sessions}
