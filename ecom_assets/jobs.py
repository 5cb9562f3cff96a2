"""Wiring: the named jobs every kind of run goes through, and what requests them.

| kind of run | job | requested by |
|---|---|---|
| ingest one drop | `ingest_<kind>_job` (ingest domain) | `landing_zone_sensor`, `ecom-assets run` |
| refresh after drops | `drop_refresh_job` | `drop_refresh_sensor` (seconds after an ingest run) |
| daily reports | `daily_refresh_job` | `daily_refresh_schedule` (06:00 UTC, only after new data) |
| retrain | `churn_retrain_job` (churn domain) | `retrain_sensor`, `ecom-assets run --retrain` |
| full build | `build_all_job` | `ecom-assets run` |

A domain says which refresh rebuilds an asset with a tag (`ecom_assets.automation`); the jobs
select by that tag. This module sees the whole graph, so only the wiring imports it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import dagster as dg

from ecom_assets import churn, clean, features, ingest, insights, monitoring
from ecom_assets.automation import DAILY_CRON, REFRESH_DAILY, REFRESH_FIRST_MODEL, REFRESH_PER_DROP
from ecom_assets.churn import registry
from ecom_assets.churn.assets import TRIGGER_TAG
from ecom_assets.ingest import RAW_ASSETS
from ecom_assets.ingest.sensor import INGEST_JOBS
from ecom_assets.resources import build_resources
from ecom_assets.settings import EcomSettings

DOMAINS = [ingest.defs, clean.defs, features.defs, churn.defs, monitoring.defs, insights.defs]
BUILD_ALL_JOB = "build_all_job"
DROP_REFRESH_JOB = "drop_refresh_job"
DAILY_REFRESH_JOB = "daily_refresh_job"
# the dashboard is a daily report that also follows the churn list: rebuilt in each drop refresh
# (once the daily reports it shows exist) and after each retrain, so it never shows a stale champion
DASHBOARD = dg.AssetKey("kpi_dashboard")
IN_PROGRESS = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def keys_tagged(tags: dict) -> list[dg.AssetKey]:
    """Asset keys of every domain whose tags include `tags` (e.g. REFRESH_PER_DROP)."""
    return sorted(spec.key for defs in DOMAINS for assets_def in defs.assets for spec in assets_def.specs
                  if all(spec.tags.get(k) == v for k, v in tags.items()))


def _tagged(tags: dict) -> dg.AssetSelection:
    (key, value), = tags.items()
    return dg.AssetSelection.tag(key, value)


build_all_job = dg.define_asset_job(
    BUILD_ALL_JOB,
    # per-file partitioned assets run per drop (their ingest jobs), not in this one unpartitioned run
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("ingest")
    - dg.AssetSelection.assets("sessions_drop_profile"),
    description="Builds every table, model, report and export from the ingested partitions (`ecom-assets run`).",
)
drop_refresh_job = dg.define_asset_job(
    DROP_REFRESH_JOB,
    selection=_tagged(REFRESH_PER_DROP) | _tagged(REFRESH_FIRST_MODEL) | dg.AssetSelection.assets(DASHBOARD),
    description="After new drops: clean tables, customer history and features, churn scores, the risk list, "
    "segments and the KPI dashboard (plus the first churn model while none exists). Requested by "
    "drop_refresh_sensor.",
)
daily_refresh_job = dg.define_asset_job(
    DAILY_REFRESH_JOB,
    selection=_tagged(REFRESH_DAILY),
    description="Once a day after new data: the analytical reports, the KPI dashboard, feature drift and realised "
    "model performance. Requested by daily_refresh_schedule.",
)


@dataclass
class RefreshDecision:
    request: dg.RunRequest | None
    cursor: int | None
    reason: str


def _new_drops(instance: dg.DagsterInstance, after: int | None) -> dict[dg.AssetKey, int]:
    """Raw asset -> storage id of its newest partition materialization after `after` (those with one)."""
    newest = {}
    for asset in RAW_ASSETS.values():
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=asset.key, after_storage_id=after),
                                                  limit=1, ascending=False).records
        if records:
            newest[asset.key] = records[0].storage_id
    return newest


@functools.cache
def _asset_graph():
    return dg.Definitions.merge(*DOMAINS, dg.Definitions(resources=build_resources())).resolve_asset_graph()


def refreshed_by_drops(updated: list[dg.AssetKey], has_model: bool, dashboard: bool = False) -> list[dg.AssetKey]:
    """What `drop_refresh_job` rebuilds after drops of these raw assets: its assets downstream of
    them (a sessions drop leaves clean_customers alone), the first model's too while none exists,
    and the KPI dashboard when `dashboard` (it was built before, so the daily reports it reads exist)."""
    keys = set(keys_tagged(REFRESH_PER_DROP)) | (set() if has_model else set(keys_tagged(REFRESH_FIRST_MODEL)))
    keys |= {DASHBOARD} if dashboard else set()
    return sorted(keys & dg.AssetSelection.assets(*updated).downstream().resolve(_asset_graph()))


def materialized(instance: dg.DagsterInstance, key: dg.AssetKey) -> bool:
    """Whether `key` has been materialized at least once on `instance`."""
    return instance.get_latest_materialization_event(key) is not None


def _busy(instance: dg.DagsterInstance, job_names: list[str]) -> str | None:
    for name in job_names:
        runs = instance.get_run_records(dg.RunsFilter(job_name=name, statuses=IN_PROGRESS), limit=1)
        if runs:
            return f"{name} run {runs[0].dagster_run.run_id[:8]}"
    return None


def plan_drop_refresh(instance: dg.DagsterInstance, cursor: int | None, has_model: bool) -> RefreshDecision:
    """One `drop_refresh_job` run for every batch of new drops.

    New = a raw partition materialized after the cursor (a failed ingest materializes nothing, so
    it requests nothing). While an ingest or a refresh run is still queued or running, it waits
    without moving the cursor: drops that land together get one refresh, as the former eager
    condition's "not while upstream is in progress" did. Without any model version the run also
    trains the first model (trigger `initial`).
    """
    new = _new_drops(instance, cursor)
    if not new:
        return RefreshDecision(None, cursor, "no new drop since the last refresh")
    latest = max(new.values())
    busy = _busy(instance, [*(job.name for job in INGEST_JOBS.values()), DROP_REFRESH_JOB])
    if busy:
        return RefreshDecision(None, cursor, f"new drops wait for {busy} to finish")
    tags = {} if has_model else {TRIGGER_TAG: "initial"}
    request = dg.RunRequest(run_key=f"drops-through-{latest}", job_name=DROP_REFRESH_JOB,
                            asset_selection=refreshed_by_drops(sorted(new), has_model, materialized(instance, DASHBOARD)),
                            tags=tags)
    return RefreshDecision(request, latest, f"refresh after new {', '.join(k.to_user_string() for k in sorted(new))} "
                           f"(through event {latest})" + ("" if has_model else ", with the first model"))


@dg.sensor(
    name="drop_refresh_sensor",
    jobs=[drop_refresh_job],
    minimum_interval_seconds=5,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests drop_refresh_job once a drop's ingest run has succeeded (one run for drops landing "
    "together; waits while an ingest or refresh run is in progress).",
)
def drop_refresh_sensor(context: dg.SensorEvaluationContext, settings: EcomSettings):
    cursor = json.loads(context.cursor) if context.cursor else None
    decision = plan_drop_refresh(context.instance, cursor, bool(registry.list_versions(settings.models)))
    if decision.cursor != cursor:
        context.update_cursor(json.dumps(decision.cursor))
    return decision.request or dg.SkipReason(decision.reason)


def plan_daily_refresh(instance: dg.DagsterInstance) -> str | None:
    """None when a daily refresh is due (a drop arrived since the last one started), else why not."""
    last = instance.get_run_records(dg.RunsFilter(job_name=DAILY_REFRESH_JOB), limit=1)
    since = last[0].create_timestamp.timestamp() if last else None
    newest = [record.timestamp for asset in RAW_ASSETS.values()
              for record in instance.fetch_materializations(asset.key, limit=1, ascending=False).records]
    if not newest:
        return "no data yet"
    if since is not None and max(newest) <= since:
        return "no new drop since the last daily refresh"
    return None


@dg.schedule(
    name="daily_refresh_schedule",
    job=daily_refresh_job,
    cron_schedule=DAILY_CRON,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="06:00 UTC: daily_refresh_job, when a drop arrived since the previous daily refresh.",
)
def daily_refresh_schedule(context: dg.ScheduleEvaluationContext):
    skip = plan_daily_refresh(context.instance)
    if skip:
        return dg.SkipReason(skip)
    return dg.RunRequest(run_key=context.scheduled_execution_time.date().isoformat())


@dg.run_status_sensor(
    name="dashboard_after_retrain_sensor",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[churn.churn_retrain_job],
    request_job=daily_refresh_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a successful churn_retrain_job: rebuilds kpi_dashboard, so the page names the champion "
    "that now serves (a promotion re-scores the churn list in the same retrain run).",
)
def dashboard_after_retrain_sensor(context: dg.RunStatusSensorContext):
    if not materialized(context.instance, DASHBOARD):
        return dg.SkipReason("no dashboard yet: the first daily refresh builds it")
    return dg.RunRequest(run_key=f"dashboard-after-{context.dagster_run.run_id}", asset_selection=[DASHBOARD])


JOBS = [build_all_job, drop_refresh_job, daily_refresh_job]
SENSORS = [drop_refresh_sensor, dashboard_after_retrain_sensor]
SCHEDULES = [daily_refresh_schedule]
