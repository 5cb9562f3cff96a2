"""The loop's automation: `retrain_sensor` (and its decision, `decide_retrain`, which `ecom-assets run`
also evaluates once), the on-call `alert_on_run_failure` sensor and the scoring schedule."""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import dagster as dg

from ecom_assets.churn import registry
from ecom_assets.churn.assets import MORE_HISTORY, TRIGGER_DETAIL_TAG, TRIGGER_TAG, churn_retrain_job, churn_scoring_job
from ecom_assets.monitoring.assets import DRIFT_LATEST, PERFORMANCE_LATEST, read_json
from ecom_assets.monitoring.performance import latest_feature_fingerprint
from ecom_assets.settings import EcomSettings

RETRAIN_JOB = "churn_retrain_job"


@dataclass
class RetrainDecision:
    request: dg.RunRequest | None
    cursor: dict
    reason: str


def decide_retrain(settings: EcomSettings, cursor: dict, now: datetime) -> RetrainDecision:
    """Edge-triggered retraining with a cooldown.

    A drift *episode* opens when a new report's drift share reaches the threshold and closes only
    when a later report falls below it: one retrain per episode, however many reports (or new
    champions) follow while it lasts. Performance decay works the same way per matured batch. No
    request within `retrain_cooldown_hours` of the previous one.

    While the latest version could not be trained (too little history, nothing saved), neither
    signal can ever fire (no champion, no holdout AUC): once the data has changed since that
    version (the newest prediction batch's `feature_fingerprint` differs from the one on its card
    and on its last recheck) one `more_history` retrain is requested per data state, outside the
    cooldown; `churn_model` makes a new version only if the training data changed too.
    """
    cursor = dict(cursor)
    drift = read_json(settings.reports / DRIFT_LATEST)
    performance = read_json(settings.reports / PERFORMANCE_LATEST)
    last = datetime.fromisoformat(cursor["last_request_at"]) if cursor.get("last_request_at") else None
    cooling = last is not None and now - last < timedelta(hours=settings.retrain_cooldown_hours)
    trigger = detail = run_key = None
    # what is true of each signal when it requests nothing (the CLI prints it): never "no new drift" when
    # nothing could be compared
    if drift is None:
        drift_state = ("no reference yet (no champion model)" if registry.champion_version(settings.models) is None
                       else "no report yet")
    else:
        drift_state = f"no new report since {drift['report_id']}"

    if drift and drift["report_id"] != cursor.get("drift_report"):
        cursor["drift_report"] = drift["report_id"]
        drifting = drift["drift_share"] >= settings.drift_share_threshold
        share = f"share {drift['drift_share']:.0%} vs threshold {settings.drift_share_threshold:.0%}"
        if drifting and not cursor.get("drift_episode_open"):
            cursor["drift_episode_open"] = True
            trigger, run_key = "drift", f"drift-{drift['report_id']}"
            detail = (f"drift share {drift['drift_share']:.0%} >= {settings.drift_share_threshold:.0%} vs reference "
                      f"{drift['reference_version']} (report {drift['report_id']}): {', '.join(drift['drifted_columns'])}")
        elif drifting:
            drift_state = f"{share}, episode already open (one retrain per episode)"
        else:
            cursor["drift_episode_open"] = False
            drift_state = f"no new drift ({share})"

    if performance is None or performance.get("holdout_auc") is None:
        performance_state = "no matured prediction batch with a holdout AUC yet"
    else:
        performance_state = f"no new matured batch since {performance['report_id']}"
    if trigger is None and performance and performance.get("holdout_auc") is not None \
            and performance["report_id"] != cursor.get("performance_report"):
        cursor["performance_report"] = performance["report_id"]
        decayed = performance["realised_auc"] < performance["holdout_auc"] - settings.auc_decay_margin
        auc = (f"realised AUC {performance['realised_auc']:.3f} vs holdout {performance['holdout_auc']:.3f} - "
               f"{settings.auc_decay_margin}")
        if decayed and not cursor.get("performance_episode_open"):
            cursor["performance_episode_open"] = True
            trigger, run_key = "performance", f"performance-{performance['report_id']}"
            detail = (f"realised AUC {performance['realised_auc']:.3f} of {performance['model_version']} (batch "
                      f"{performance['as_of']}) < holdout AUC {performance['holdout_auc']:.3f} - "
                      f"{settings.auc_decay_margin}")
        elif decayed:
            performance_state = f"{auc}, episode already open (one retrain per episode)"
        else:
            cursor["performance_episode_open"] = False
            performance_state = f"no decay ({auc})"

    model_state = None
    latest = registry.latest_card(settings.models)
    untrained = registry.could_not_train(settings.models, latest)
    if untrained:
        now_seen = latest_feature_fingerprint(settings.path("warehouse", "prediction_log"))
        recheck = latest.get("last_recheck") or {}
        key = f"more-history-{latest['version']}-{now_seen}"
        if now_seen is None:
            model_state = f"{untrained}; no prediction batch yet to tell whether the data changed"
        elif now_seen == latest.get("features_fingerprint"):
            model_state = f"{untrained}; the data has not changed since"
        elif now_seen == recheck.get("features_fingerprint"):
            model_state = f"{untrained}; rechecked on the data as it is now: {recheck.get('outcome')}"
        elif cursor.get("more_history_request") == key:
            model_state = f"{untrained}; a retrain was already requested for the data as it is now"
        elif trigger is None:
            cursor["more_history_request"] = key
            trigger, run_key = MORE_HISTORY, key
            detail = (f"{untrained} and the data changed since (features fingerprint {now_seen}, "
                      f"was {latest.get('features_fingerprint')})")

    if trigger is None:
        return RetrainDecision(None, cursor, f"drift: {drift_state}; performance: {performance_state}"
                               + (f"; model: {model_state}" if model_state else ""))
    if trigger != MORE_HISTORY:  # more_history: one request per data state (its run_key), no cooldown needed
        if cooling:
            return RetrainDecision(None, cursor, f"{trigger} episode opened, but the previous retrain was requested "
                                   f"at {last.isoformat()} (cooldown {settings.retrain_cooldown_hours} h): {detail}")
        cursor["last_request_at"] = now.isoformat()
    request = dg.RunRequest(run_key=run_key, job_name=RETRAIN_JOB,
                            tags={TRIGGER_TAG: trigger, TRIGGER_DETAIL_TAG: detail[:1000]})
    return RetrainDecision(request, cursor, f"retrain requested ({trigger}): {detail}")


@dg.sensor(
    name="retrain_sensor",
    jobs=[churn_retrain_job],
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Requests churn_retrain_job when the feature-drift share reaches the threshold or realised AUC falls more "
        "than the margin below the model card's holdout AUC, or (trigger more_history) when the latest model "
        "could not be trained and the data has changed since. A sensor rather than an AutomationCondition because it "
        "needs state (open episode, cooldown) in its cursor and a run_key tied to the triggering report."
    ),
)
def retrain_sensor(context: dg.SensorEvaluationContext, settings: EcomSettings):
    cursor = json.loads(context.cursor) if context.cursor else {}
    decision = decide_retrain(settings, cursor, datetime.now(timezone.utc))
    context.update_cursor(json.dumps(decision.cursor))
    if decision.request is None:
        return dg.SkipReason(decision.reason)
    context.log.info(decision.reason)
    return decision.request


def alert_record(run: dg.DagsterRun, failure_event, instance: dg.DagsterInstance) -> dict:
    """Job, failed steps, each step's error and the run's error of a failed run: what a pager would
    receive (`step_errors`: step key -> the exception line, so the alert says what broke without the UI)."""
    step_errors: dict[str, str] = {}
    for record in instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records:
        entry = record.event_log_entry
        if not entry.step_key:
            continue
        data = entry.dagster_event.step_failure_data if entry.dagster_event else None
        error = data.error if data is not None else None
        while error is not None and error.cause is not None and "dagster" in (error.cls_name or "").lower():
            error = error.cause  # Dagster wraps the user's exception: the cause is what broke
        step_errors.setdefault(entry.step_key, (error.message.strip() if error else "")[:500])
    return {
        "time": datetime.now(timezone.utc).isoformat(),
        "job": run.job_name,
        "run_id": run.run_id,
        "failed_steps": sorted(step_errors),
        "step_errors": step_errors,
        "error": (failure_event.message or "")[:2000] if failure_event else "",
        "tags": {k: v for k, v in run.tags.items() if k.startswith("ecom/")},
    }


@dg.run_failure_sensor(name="alert_on_run_failure", default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Every failed run -> one JSON line in alerts/alerts.jsonl and an error in the log "
                                   "(the one place to hook a pager into).")
def alert_on_run_failure(context: dg.RunFailureSensorContext, settings: EcomSettings) -> None:
    record = append_failure_alert(settings, context.dagster_run, context.failure_event, context.instance)
    context.log.error(f"run {record['run_id']} of {record['job']} failed in {record['failed_steps']}: {record['error']}")


def append_failure_alert(settings: EcomSettings, run: dg.DagsterRun, failure_event,
                         instance: dg.DagsterInstance) -> dict:
    """Append `alert_record` of a failed run to `alerts/alerts.jsonl` and return it. The daemon's
    `alert_on_run_failure` calls it; so does `ecom-assets run`, whose in-process runs no daemon sees."""
    record = alert_record(run, failure_event, instance)
    with (settings.alerts / "alerts.jsonl").open("a") as handle:
        handle.write(json.dumps(record) + "\n")
    return record


def alert_failed_result(settings: EcomSettings, result: dg.ExecuteInProcessResult,
                        instance: dg.DagsterInstance) -> dict | None:
    """`append_failure_alert` for a run executed in process; None (nothing written) if it succeeded."""
    if result.success:
        return None
    failure = next((e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE), None)
    return append_failure_alert(settings, result.dagster_run, failure, instance)


scoring_schedule = dg.ScheduleDefinition(
    name="daily_churn_scoring",
    job=churn_scoring_job,
    cron_schedule="0 6 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Re-score every customer with the serving champion each morning (switch on in the UI).",
)
