"""`landing_zone_sensor` and `ingest_landing` (the CLI's path): the same planning function decides
which files become partitions and runs, which are rejected, and which are waited for."""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from ecom_assets.ingest.assets import RAW_ASSETS, SESSION_ASSETS, landing_rejects, read_rejects, rejects_check
from ecom_assets.ingest.landing import HASHED_TAG, LandingFile, alert, reject, scan_landing
from ecom_assets.ingest.parse import KINDS, FileRejected, check_header
from ecom_assets.ingest.partitions import PARTITIONS, archive_name, file_name_of
from ecom_assets.ingest.sources import SOURCES_FILE, SourcesError, SourceSpec, load_sources, spec_for
from ecom_assets.settings import EcomSettings

# One job per kind: a run can only target assets with one partitions definition. A sessions drop is
# profiled against the earlier drops in the same run (the profile shares the partition), so on-call
# sees a shifted file with its ingest run, without a second run per drop.
PER_DROP_ASSETS = {"sessions": ["sessions_drop_profile"], "orders": ["raw_order_sessions"],
                   "events": ["raw_event_sessions"]}
INGEST_JOBS = {
    kind: dg.define_asset_job(f"ingest_{kind}_job", selection=[asset.key.to_user_string(), *PER_DROP_ASSETS.get(kind, [])],
                              partitions_def=PARTITIONS[kind],
                              description=f"Ingest one {kind} drop (one partition of raw_{kind})"
                              + (f" and materialize {', '.join(PER_DROP_ASSETS[kind])} for it." if kind in PER_DROP_ASSETS
                                 else "."))
    for kind, asset in RAW_ASSETS.items()
}
REJECTS_KEY = landing_rejects.key
RESUMED_TAG = "ecom/resumed"  # on a run that finishes an interrupted ingest: the steps it materializes
UNDER_WAY = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
KIND_ORDER = {"customers": 0, "campaigns": 1, "sessions": 2, "orders": 2, "events": 2}  # customers first: sessions are flagged against them


def precheck(item: LandingFile, spec: SourceSpec | None = None) -> None:
    """Cheap whole-file checks before a partition is created (header and encoding of its start)."""
    if item.kind is None:
        raise FileRejected("file name matches no input kind (customers*.csv, sessions*.csv, campaigns*.csv, "
                           "orders*.csv, events*.csv, optionally .gz) and no sources.yaml entry declares its kind")
    if item.kind not in KINDS:
        raise FileRejected(f"kind {item.kind!r} (declared by {spec.describe() if spec else 'sources.yaml'}) "
                           "cannot be ingested by this version")
    if item.size == 0:
        raise FileRejected("empty file (0 bytes)")
    check_header(item.path, item.kind, spec)


def _reject(plan: "TickPlan", item: LandingFile, settings: EcomSettings, reason: str, log) -> None:
    plan.seen.pop(item.name, None)
    try:
        reject(item.path, settings, reason, name=item.name, log=log)
    except FileNotFoundError:  # moved away since the listing (by its writer): nothing left to reject
        return
    plan.rejected[item.name] = reason


@dataclass(frozen=True)
class UnfinishedDrop:
    kind: str
    key: str
    steps: list[dg.AssetKey]  # the steps of its ingest job still to materialize, in job order
    raw_id: int | None  # storage id of the raw partition's latest materialization (None: none)


def _latest_ids(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> dict[str, int]:
    return dict(instance.event_log_storage.get_latest_storage_id_by_partition(
        asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION))


def unfinished_drops(settings: EcomSettings, instance: dg.DagsterInstance,
                     skip: set[str] = frozenset()) -> list[UnfinishedDrop]:
    """Drops whose ingest run did not complete (Ctrl-C, a killed process, a failed step): a registered
    partition whose raw table is stored but a later step of its ingest job (raw_order_sessions,
    raw_event_sessions, sessions_drop_profile) has no materialization as recent as it, or whose original
    is in archive/ but whose raw table was never stored. Read from the instance's event log (latest
    materialization per partition, one query per asset), so the check costs the same for any number
    of drops. Partitions in `skip` (runs under way) are left out. A drop rejected by its run (original
    in rejected/) or never run (still in landing/) is not unfinished: the landing scan handles those."""
    unfinished = []
    for kind, raw in RAW_ASSETS.items():
        later = [dg.AssetKey(name) for name in PER_DROP_ASSETS.get(kind, [])]
        raw_ids = _latest_ids(instance, raw.key)
        later_ids = {step: _latest_ids(instance, step) for step in later}
        for key in instance.get_dynamic_partitions(PARTITIONS[kind].name):
            if key in skip:
                continue
            raw_id = raw_ids.get(key)
            if raw_id is None:
                if (settings.archive / archive_name(key)).exists():
                    unfinished.append(UnfinishedDrop(kind, key, [raw.key, *later], None))
                continue
            steps = [step for step in later if later_ids[step].get(key, -1) < raw_id]
            if steps:
                unfinished.append(UnfinishedDrop(kind, key, steps, raw_id))
    return unfinished


def ingest_runs_under_way(instance: dg.DagsterInstance) -> set[str]:
    """Partition keys of ingest runs queued or running: their later steps are not missing, only not done yet."""
    jobs = {job.name for job in INGEST_JOBS.values()}
    return {record.dagster_run.tags.get("dagster/partition") for record in
            instance.get_run_records(dg.RunsFilter(statuses=UNDER_WAY)) if record.dagster_run.job_name in jobs}


def resume_request(drop: UnfinishedDrop) -> dg.RunRequest:
    """The drop's ingest job over its missing steps only. The run key names the raw materialization it
    finishes: the sensor tries once per raw materialization (a step that fails again shows as a failed
    run and in clean_sessions' every_drop_accounted check, never as a retry every tick)."""
    steps = ", ".join(step.to_user_string() for step in drop.steps)
    return dg.RunRequest(
        run_key=f"{drop.key}@resume-{drop.raw_id if drop.raw_id is not None else 'archived'}",
        partition_key=drop.key,
        job_name=INGEST_JOBS[drop.kind].name,
        asset_selection=drop.steps,
        tags={"ecom/source_file": file_name_of(drop.key), "ecom/kind": drop.kind, RESUMED_TAG: steps},
    )


@dataclass
class TickPlan:
    requests: list[dg.RunRequest] = field(default_factory=list)
    new_partitions: dict[str, list[str]] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)  # file below landing/ -> reason
    waiting: list[str] = field(default_factory=list)
    sources_problem: str | None = None  # sources.yaml unusable: new drops wait until it is fixed
    deferred: int = 0  # ready files left for the next tick (cap reached)
    seen: dict[str, list] = field(default_factory=dict)
    requested: dict[str, str] = field(default_factory=dict)
    keys: dict[str, list] = field(default_factory=dict)  # name -> [size, mtime, partition key]
    resumed: dict[str, str] = field(default_factory=dict)  # partition key -> the steps its resume run materializes

    def summary(self) -> str:
        if self.sources_problem:
            return f"{len(self.waiting)} file(s) wait until sources.yaml is fixed: {self.sources_problem}"
        return (f"{len(self.requests)} run(s) requested ({len(self.resumed)} finishing an interrupted ingest), "
                f"{sum(map(len, self.new_partitions.values()))} new "
                f"partition(s), {len(self.rejected)} rejected, {len(self.waiting)} still being written, "
                f"{self.deferred} deferred to the next tick")

    def cursor(self) -> str:
        return json.dumps({"seen": self.seen, "requested": self.requested, "keys": self.keys,
                           "sources_problem": self.sources_problem})


def plan_tick(
    settings: EcomSettings,
    instance: dg.DagsterInstance,
    cursor: dict,
    assume_stable: bool = False,
    max_runs: int | None = None,
    log=None,
    under_way: set[str] = frozenset(),
) -> TickPlan:
    """Decide what one tick does. Side effects: only rejecting files (landing.reject: moved to
    rejected/, an alert line, a WARNING on `log`).

    First the drops whose ingest run did not complete (`unfinished_drops`, except partitions in
    `under_way`) are resumed, then the landing folder's files are planned.

    Hashing is the only per-file cost that grows with file size, so a file is hashed at most
    once (the key is cached in the cursor by name, size and mtime) and only when the tick still
    has room for a run: a landing zone of 10,000 files costs a directory listing per tick.
    """
    max_runs = settings.max_runs_per_tick if max_runs is None else max_runs
    ready, waiting, seen = scan_landing(settings.landing, cursor.get("seen", {}), assume_stable,
                                        settings.landing_settle_seconds)
    previously_requested: dict[str, str] = cursor.get("requested", {})
    cached_keys: dict[str, list] = cursor.get("keys", {})
    plan = TickPlan(waiting=[w.name for w in waiting], seen=seen)
    try:  # read on every tick: an edit applies to the next drop without a restart
        specs = load_sources(settings.data_dir)
    except SourcesError as err:  # never guess what the operator meant to declare: hold new drops
        plan.sources_problem = str(err)
        plan.waiting += [item.name for item in ready]
        plan.keys, plan.requested = cached_keys, previously_requested
        return plan
    for drop in unfinished_drops(settings, instance, under_way)[:max_runs]:
        plan.requests.append(request := resume_request(drop))
        plan.resumed[drop.key] = request.tags[RESUMED_TAG]
    known = {kind: set(instance.get_dynamic_partitions(defn.name)) for kind, defn in PARTITIONS.items()}
    declared = {item.name: spec_for(item.name, specs) for item in ready}
    ready = [dataclasses.replace(item, kind=declared[item.name].kind)
             if declared[item.name] and declared[item.name].kind else item for item in ready]
    for item in sorted(ready, key=lambda f: (KIND_ORDER.get(f.kind or "", 9), f.name)):
        cached = cached_keys.get(item.name)
        key = cached[2] if cached and cached[:2] == item.signature else None
        identity = None  # of the file as hashed this tick: its run need not hash it again
        if key is None and len(plan.requests) >= max_runs:
            plan.deferred += 1  # not hashed yet and no room this tick
            continue
        try:
            if key is None:
                precheck(item, declared[item.name])
                key, identity = item.hashed_key()
        except (FileRejected, OSError) as err:
            _reject(plan, item, settings, str(err), log)
            continue
        plan.keys[item.name] = [*item.signature, key]
        if previously_requested.get(key) == item.name:
            plan.requested[key] = item.name  # its run is queued or running: leave the file alone
            continue
        if key in known[item.kind] and (settings.archive / archive_name(key)).exists():
            _reject(plan, item, settings, f"identical bytes were already ingested as partition {key} (to read them again, e.g. after a "
                    "sources.yaml change, drop them under another file name: rows kept before count as duplicates)", log)
            plan.keys.pop(item.name)
            continue
        if len(plan.requests) >= max_runs:
            plan.deferred += 1
            continue
        if key not in known[item.kind]:
            plan.new_partitions.setdefault(item.kind, []).append(key)
        plan.requested[key] = item.name
        plan.requests.append(
            dg.RunRequest(
                run_key=key,
                partition_key=key,
                job_name=INGEST_JOBS[item.kind].name,
                tags={"ecom/source_file": item.name, "ecom/kind": item.kind,
                      **({HASHED_TAG: json.dumps([item.name, *identity])} if identity else {})},
            )
        )
    return plan


@dg.sensor(
    name="landing_zone_sensor",
    jobs=list(INGEST_JOBS.values()),
    minimum_interval_seconds=5,  # the sensor daemon's own loop is 5 s: a drop is picked up within a tick
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches landing/ and its sub-folders for customers*/sessions*/campaigns*/orders*/events*.csv (or .csv.gz, or a kind "
        "declared in sources.yaml). A file is ingested once its size and mtime "
        "are stable across two ticks, or at once when it was renamed into place or its last write is "
        "`landing_settle_seconds` (default 10) old; one partition and one run per file (run_key = content hash), at most "
        "`max_runs_per_tick` (EcomSettings, default 25) runs per tick, each file hashed once; unreadable files "
        "and re-drops go to rejected/ with a reason, a WARNING, an alert line and a failing WARN check on "
        "landing_rejects. A drop whose ingest run stopped between its steps (its raw table stored or its original "
        "archived, a later step such as raw_order_sessions missing) is resumed first, once no ingest run of it is "
        "under way (one attempt per raw materialization)."
    ),
)
def landing_zone_sensor(context: dg.SensorEvaluationContext, settings: EcomSettings) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    plan = plan_tick(settings, context.instance, cursor, log=context.log,
                     under_way=ingest_runs_under_way(context.instance))
    if plan.sources_problem:
        context.log.warning(plan.summary())
    else:
        context.log.info(plan.summary())
    # each reject shows on landing_rejects at once (an observation per file, the WARN check failing)
    rejects = [dg.AssetObservation(asset_key=REJECTS_KEY, metadata={"file": name, "reason": reason})
               for name, reason in plan.rejected.items()]
    if rejects:
        rejects.append(rejects_check(read_rejects(settings), REJECTS_KEY))
    if plan.sources_problem and plan.sources_problem != cursor.get("sources_problem"):
        # a new sources.yaml problem shows once on landing_rejects and in alerts.jsonl (every tick in the log)
        rejects.append(dg.AssetObservation(asset_key=REJECTS_KEY,
                                           metadata={"file": SOURCES_FILE, "reason": plan.sources_problem}))
        alert(settings, {"alert": "sources_yaml_invalid", "file": SOURCES_FILE, "reason": plan.sources_problem})
    return dg.SensorResult(
        asset_events=rejects,
        run_requests=plan.requests,
        dynamic_partitions_requests=[PARTITIONS[k].build_add_request(keys) for k, keys in plan.new_partitions.items()],
        cursor=plan.cursor(),
        skip_reason=None if plan.requests else f"nothing new to ingest ({plan.summary()})",
    )


def resolved_ingest_jobs(resources: dict) -> dict[str, dg.JobDefinition]:
    """The named ingest jobs over just the assets they run, to execute in process (the CLI's path):
    the runs carry the same job names as the sensor's."""
    from ecom_assets.monitoring.assets import sessions_drop_profile

    defs = dg.Definitions(assets=[*RAW_ASSETS.values(), *SESSION_ASSETS.values(), sessions_drop_profile], jobs=list(INGEST_JOBS.values()),
                          resources=resources, executor=dg.in_process_executor)
    return {kind: defs.resolve_job_def(job.name) for kind, job in INGEST_JOBS.items()}


def ingest_landing(instance: dg.DagsterInstance, data_dir: str | Path, run_logging=None) -> str:
    """Ingest every file in `data_dir/landing` now, through the sensor's planning code.

    One pass, every file treated as complete (the CLI user has finished copying); each request
    runs its named ingest job in process against `instance`, so the runs appear in the UI as the
    sensor's would. A drop whose earlier ingest run did not complete (`unfinished_drops`) has its
    missing steps run first. `run_logging` (ecom_assets.progress.RunLogging) prints each step as it ends.
    """
    from ecom_assets.resources import build_resources

    settings = EcomSettings(data_dir=str(data_dir))
    plan = plan_tick(settings, instance, {}, assume_stable=True, max_runs=10**9)
    for kind, keys in plan.new_partitions.items():
        instance.add_dynamic_partitions(PARTITIONS[kind].name, keys)
    jobs = resolved_ingest_jobs(build_resources(data_dir)) if plan.requests else {}
    totals = {"rows_in": 0, "clean": 0, "quarantined": 0, "duplicate": 0}
    failed, ingested, resumed = [], 0, []
    for request in plan.requests:
        kind = request.tags["ecom/kind"]
        run = dict(partition_key=request.partition_key, instance=instance, tags={**request.tags, "ecom/trigger": "cli"},
                   asset_selection=request.asset_selection)
        result = (run_logging.execute(jobs[kind], **run) if run_logging
                  else jobs[kind].execute_in_process(raise_on_error=False, **run))
        if not result.success:
            failed.append(request.tags["ecom/source_file"])
            continue
        if RESUMED_TAG in request.tags:  # its rows were counted by the run that stored its raw table
            resumed.append(f"{request.tags['ecom/source_file']} ({request.tags[RESUMED_TAG]})")
            continue
        ingested += 1
        for event in result.get_asset_materialization_events():
            if event.asset_key != RAW_ASSETS[kind].key:
                continue
            meta = event.materialization.metadata
            for k in totals:
                totals[k] += meta[k].value
    lines = [f"finished {len(resumed)} interrupted ingest(s): {'; '.join(resumed)}"] if resumed else []
    lines.append(
        f"ingested {ingested} file(s): {totals['rows_in']:,} rows in = {totals['clean']:,} clean"
        f" + {totals['quarantined']:,} quarantined + {totals['duplicate']:,} duplicate")
    if plan.sources_problem:
        lines.append(f"NOT INGESTED: {plan.summary()}")
    if plan.rejected:
        lines.append(f"rejected {len(plan.rejected)} file(s) -> {settings.rejected}:")
        lines.extend(f"  {name}: {reason}" for name, reason in plan.rejected.items())
    if failed:
        lines.append(f"FAILED to ingest: {', '.join(failed)} (see the runs in the UI)")
    return "\n".join(lines)
