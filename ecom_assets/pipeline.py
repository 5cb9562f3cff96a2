"""`ecom-assets run`: ingest every landing file through the sensor's code path, then build the
rest of the graph on the persistent instance under `$ECOM_DATA_DIR/.dagster`, so the runs show
up in the UI afterwards under the same job names as the sensors' and the schedule's runs
(`ecom_assets/jobs.py`).
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime, timezone
from pathlib import Path


def _as_of_run_config(as_of: str | None, selected: set[str] | None = None) -> dict:
    if not as_of:
        return {}
    from ecom_assets.features import AS_OF_CONFIG_OPS

    ops = [op for op in AS_OF_CONFIG_OPS if selected is None or op in selected]
    return {"ops": {op: {"config": {"as_of": as_of}} for op in ops}}


def _execute(job, run_logging=None, **kwargs):
    return run_logging.execute(job, **kwargs) if run_logging else job.execute_in_process(raise_on_error=False, **kwargs)


def build_all(instance, as_of: str | None = None, tags: dict | None = None, retrain: bool = False, run_logging=None):
    """Materialize every asset that is not a per-file ingest partition, in one `build_all_job` run.

    The churn model is trained here when none exists yet (trigger `initial`), with `retrain`, or
    when the latest version could not be trained (trigger `more_history`: `churn_model` makes a new
    version only if the training data changed since); otherwise the retrain sensor decides, on
    drift or decaying realised performance.
    """
    import dagster as dg

    from ecom_assets.churn import registry
    from ecom_assets.churn.assets import MORE_HISTORY, TRIGGER_DETAIL_TAG, TRIGGER_TAG
    from ecom_assets.definitions import defs
    from ecom_assets.jobs import BUILD_ALL_JOB
    from ecom_assets.settings import EcomSettings, default_data_dir

    job = defs.resolve_job_def(BUILD_ALL_JOB)
    models = EcomSettings(data_dir=default_data_dir()).path("models")
    latest = registry.latest_card(models)
    untrained = registry.could_not_train(models, latest)
    selection = None
    if untrained and not retrain:
        tags = {**(tags or {}), TRIGGER_TAG: MORE_HISTORY,
                TRIGGER_DETAIL_TAG: f"{untrained}: a new version if the training data changed since"}
    elif latest is not None and not retrain:
        keep_model = {dg.AssetKey("churn_training_set"), dg.AssetKey("churn_model")}
        selection = [k for k in job.asset_layer.selected_asset_keys if k not in keep_model]
    return _execute(job, run_logging, instance=instance, tags=tags,
                    run_config=_as_of_run_config(as_of, {k.path[-1] for k in selection} if selection else None),
                    asset_selection=selection)


def refresh(instance, job_name: str, tags: dict | None = None, run_logging=None):
    """One run of a named refresh job in process, as its sensor or schedule would request it:
    `drop_refresh_job` (trains the first model too while none exists) or `daily_refresh_job`."""
    from ecom_assets.churn import registry
    from ecom_assets.definitions import defs
    from ecom_assets.jobs import DROP_REFRESH_JOB, plan_drop_refresh
    from ecom_assets.settings import EcomSettings, default_data_dir

    selection, run_tags = None, dict(tags or {})
    if job_name == DROP_REFRESH_JOB:
        has_model = bool(registry.list_versions(EcomSettings(data_dir=default_data_dir()).path("models")))
        request = plan_drop_refresh(instance, None, has_model).request
        if request is not None:
            selection, run_tags = request.asset_selection, {**request.tags, **run_tags}
    return _execute(defs.resolve_job_def(job_name), run_logging, instance=instance, tags=run_tags,
                    asset_selection=selection)


def run_automation_once(instance, data_dir: str | Path, run_logging=None) -> str:
    """Evaluate retrain_sensor's decision once (cursor kept under the data dir) and execute what it
    requests as a `churn_retrain_job` run."""
    from ecom_assets.churn import registry
    from ecom_assets.definitions import defs
    from ecom_assets.monitoring.sensors import RETRAIN_JOB, decide_retrain
    from ecom_assets.io import write_json_atomic
    from ecom_assets.jobs import DAILY_REFRESH_JOB, DASHBOARD, materialized
    from ecom_assets.settings import EcomSettings

    settings = EcomSettings(data_dir=str(data_dir))
    cursor_path = settings.path(".dagster", "retrain_sensor_cursor.json")
    cursor = json.loads(cursor_path.read_text()) if cursor_path.exists() else {}
    decision = decide_retrain(settings, cursor, datetime.now(timezone.utc))
    write_json_atomic(decision.cursor, cursor_path)
    lines = [f"retrain sensor: {decision.reason}"]
    if decision.request is not None:
        result = _execute(defs.resolve_job_def(RETRAIN_JOB), run_logging, instance=instance, tags=decision.request.tags)
        lines.append(f"retrain run {result.run_id}: {'success' if result.success else 'FAILED'}")
        # as dashboard_after_retrain_sensor does under the daemon: the page must not name the model it replaced
        if result.success and materialized(instance, DASHBOARD):
            rebuilt = _execute(defs.resolve_job_def(DAILY_REFRESH_JOB), run_logging, instance=instance,
                               asset_selection=[DASHBOARD], tags={"ecom/trigger": "after_retrain"})
            lines.append(f"dashboard rebuilt after the retrain: {'success' if rebuilt.success else 'FAILED'}")
    lines.append(f"serving: {registry.serving_in_words(settings.models)}")
    return "\n".join(lines)


def empty_assets(result) -> list[str]:
    """The assets this run materialized with no rows (their metadata says "no data yet")."""
    from ecom_assets.metadata import says_no_data

    return sorted({event.asset_key.to_user_string() for event in result.get_asset_materialization_events()
                   if says_no_data(event.materialization.metadata)})


def _summary(data_dir: Path, result, seconds: float, steps: list) -> list[str]:
    from ecom_assets.churn import registry
    from ecom_assets.metadata import NO_DATA
    from ecom_assets.progress import fmt
    from ecom_assets.resources import build_resources
    from ecom_assets.settings import EcomSettings

    settings = EcomSettings(data_dir=str(data_dir))
    failed = [step for step, _, ok in steps if not ok]
    lines = [f"\n{len(steps)} steps in {seconds:.1f} s; build run {result.run_id[:8]}: "
             + ("success" if result.success else f"FAILED in {', '.join(failed) or 'the run'}")]
    if not result.success:
        lines.append(f"alert: one line per failed run in {settings.alerts / 'alerts.jsonl'}")
    empty = empty_assets(result)
    # every input kind (sessions, orders, events) ends in clean_sessions: while it is empty, nothing is built upon
    if "clean_sessions" in empty:
        lines.append(f"{NO_DATA}: {len(empty)} table(s) have no rows ({', '.join(empty)}); drop customers*/sessions*/orders*/"
                     f"events*.csv files into {settings.landing} (rejected files and quarantined rows say why nothing was kept)")
    elif empty:  # sessions are there: an empty table is a fact about the data (no events, no returns), not a missing drop
        lines.append(f"empty tables: {', '.join(empty)}")
    cards = sorted(settings.path("models").glob("*/model_card.json"), key=lambda p: p.parent.name)
    for card_path in cards[-1:]:
        card = json.loads(card_path.read_text())
        metrics = card.get("metrics", {})
        auc = ", ".join(f"{name} {fmt(metrics[name])}" for name in ("auc_out_of_time", "auc_baseline_recency",
                                                                    "auc_best_classic", "ece")
                        if isinstance(metrics.get(name), float))
        extra = f", best classic {metrics['best_classic']}" if metrics.get("best_classic") else ""
        if metrics.get("tiers_monotone") is not None:
            extra += f", tiers monotone on holdout: {metrics['tiers_monotone']}"
        # when it was made and on which data: a verdict like "too little history" is about that data, not today's
        made = f", created {card['created_at'][:16].replace('T', ' ')} UTC" if card.get("created_at") else ""
        made += f" on data as of {card['data_as_of']}" if card.get("data_as_of") else ""
        lines.append(f"latest model {card.get('version')}: {card.get('status')} (trigger {card.get('trigger')}){made}"
                     + (f", {auc}" if auc else "") + extra)
        if card.get("status_reason"):
            lines.append(f"  {card['status_reason']}")
        if recheck := card.get("last_recheck"):
            lines.append(f"  rechecked {recheck['at'][:16].replace('T', ' ')} UTC on data as of "
                         f"{recheck.get('data_as_of')}: {recheck['outcome']}")
    lines.append(f"serving model: {registry.serving_in_words(settings.models)}")
    lines += [f"tables:  {build_resources(data_dir)['io_manager'].root}",  # the data directory or $ECOM_WAREHOUSE_URL
              f"exports: {settings.path('exports')}",
              f"reports: {settings.path('reports')}",
              "UI:      make dev  (dagster dev -w workspace.yaml on http://127.0.0.1:3000)"]
    return lines


def cli_run(args) -> int:
    from ecom_assets.instance import prepare_dagster_home
    from ecom_assets.settings import CURRENCY_ENV, DATA_DIR_ENV, EcomSettings, default_data_dir

    data_dir = Path(args.data_dir or default_data_dir()).resolve()
    os.environ[DATA_DIR_ENV] = str(data_dir)  # before definitions are imported
    if args.currency:
        os.environ[CURRENCY_ENV] = args.currency
    prepare_dagster_home(data_dir)

    import warnings

    import dagster as dg

    from ecom_assets.ingest import ingest_landing
    from ecom_assets.monitoring.sensors import alert_failed_result
    from ecom_assets.progress import RunInterrupted, RunLogging

    if not args.verbose:  # Dagster's beta/preview notices are for developers of this package
        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    settings = EcomSettings(data_dir=str(data_dir))
    run_logging = RunLogging(verbose=args.verbose,
                             on_failure=lambda result, instance: alert_failed_result(settings, result, instance))
    started = time.perf_counter()
    stage = "start"
    try:
        with run_logging.stop_on_signals(), dg.DagsterInstance.get() as instance:
            stage = "ingest"
            print(f"ingest: {data_dir / 'landing'}", flush=True)
            print(ingest_landing(instance, data_dir, run_logging), flush=True)
            stage = "build"
            print("build: every table, model, report and export", flush=True)
            result = build_all(instance, as_of=args.as_of, retrain=args.retrain, run_logging=run_logging,
                               tags={"ecom/trigger": "manual"} if args.retrain else None)
            if result.success and not args.no_automation:
                stage = "retrain sensor"
                print(run_automation_once(instance, data_dir, run_logging))
    except RunInterrupted as stop:
        run_logging.close()
        where = f"step {', '.join(stop.steps)} ({stage})" if stop.steps else f"the {stage} stage"
        print(f"interrupted by {signal.Signals(stop.signum).name} during {where} after "
              f"{time.perf_counter() - started:.1f} s: stopped. Stored tables are the last complete ones (every write "
              "is a temporary file renamed into place); run `ecom-assets run` again to finish.", flush=True)
        return stop.exit_code
    run_logging.close()
    print("\n".join(_summary(data_dir, result, time.perf_counter() - started, run_logging.printer.steps)))
    return 0 if result.success else 1
