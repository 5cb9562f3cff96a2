"""`ecom-assets run`: ingest every landing file through the sensor's code path, then build the
rest of the graph on the persistent instance under `$ECOM_DATA_DIR/.dagster`, so the runs show
up in the UI afterwards exactly as if the sensor and the automation had done them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

BUILD_ALL_JOB = "build_all_job"


def _as_of_run_config(as_of: str | None, selected: set[str] | None = None) -> dict:
    if not as_of:
        return {}
    from ecom_assets.features import AS_OF_CONFIG_OPS

    ops = [op for op in AS_OF_CONFIG_OPS if selected is None or op in selected]
    return {"ops": {op: {"config": {"as_of": as_of}} for op in ops}}


def build_all(instance, as_of: str | None = None, tags: dict | None = None, retrain: bool = False):
    """Materialize every asset that is not a per-file ingest partition, in one run.

    The churn model is trained here only when none exists yet (or `retrain`); afterwards the
    retrain sensor decides, on drift or decaying realised performance.
    """
    import dagster as dg

    from ecom_assets.churn import registry
    from ecom_assets.definitions import defs
    from ecom_assets.settings import EcomSettings, default_data_dir

    job = defs.resolve_job_def(BUILD_ALL_JOB)
    has_model = bool(registry.list_versions(EcomSettings(data_dir=default_data_dir()).path("models")))
    selection = None
    if has_model and not retrain:
        keep_model = {dg.AssetKey("churn_training_set"), dg.AssetKey("churn_model")}
        selection = [k for k in job.asset_layer.selected_asset_keys if k not in keep_model]
    return job.execute_in_process(
        instance=instance, raise_on_error=False, tags=tags,
        run_config=_as_of_run_config(as_of, {k.path[-1] for k in selection} if selection else None),
        asset_selection=selection,
    )


def keys_refreshed_by(label: str) -> list:
    """Asset keys whose automation condition carries `label` (ON_NEW_DATA, DAILY in automation.py)."""
    from ecom_assets.definitions import defs

    return [key for assets_def in defs.assets for key, condition in assets_def.automation_conditions_by_key.items()
            if condition is not None and condition.get_label() == label]


def refresh(instance, label: str, updated: list | None = None, tags: dict | None = None):
    """One run of what declarative automation refreshes under `label` (what the daemon would launch):
    with `updated` (asset keys that received data), only what lies downstream of them."""
    import dagster as dg

    from ecom_assets.definitions import defs

    keys = set(keys_refreshed_by(label))
    if updated is not None:
        keys &= dg.AssetSelection.assets(*updated).downstream().resolve(defs.resolve_asset_graph())
    job = defs.resolve_job_def(BUILD_ALL_JOB)
    return job.execute_in_process(instance=instance, raise_on_error=False, tags=tags, asset_selection=sorted(keys))


def profile_new_drops(instance, data_dir: Path) -> int:
    """Materialize `sessions_drop_profile` for every sessions partition that has none yet."""
    import dagster as dg

    from ecom_assets.ingest import raw_sessions
    from ecom_assets.ingest.partitions import sessions_files
    from ecom_assets.monitoring.assets import sessions_drop_profile
    from ecom_assets.resources import build_resources

    done = instance.get_materialized_partitions(sessions_drop_profile.key)
    todo = [k for k in instance.get_dynamic_partitions(sessions_files.name) if k not in done]
    materialized = instance.get_materialized_partitions(raw_sessions.key)
    for key in todo:
        if key in materialized:
            dg.materialize([raw_sessions, sessions_drop_profile], selection=[sessions_drop_profile], partition_key=key,
                           instance=instance, resources=build_resources(data_dir), raise_on_error=False)
    return len(todo)


def empty_assets(result) -> list[str]:
    """The assets this run materialized with no rows (their metadata says "no data yet")."""
    from ecom_assets.metadata import NO_DATA

    return sorted({event.asset_key.to_user_string() for event in result.get_asset_materialization_events()
                   if (status := event.materialization.metadata.get("status")) is not None and status.value == NO_DATA})


def _print_summary(data_dir: Path, result, seconds: float) -> None:
    from ecom_assets.metadata import NO_DATA
    from ecom_assets.resources import build_resources
    from ecom_assets.settings import EcomSettings

    settings = EcomSettings(data_dir=str(data_dir))
    print(f"\nbuild run {result.run_id}: {'success' if result.success else 'FAILED'} in {seconds:.1f} s")
    empty = empty_assets(result)
    if empty:
        print(f"{NO_DATA}: {len(empty)} table(s) have no rows ({', '.join(empty)}); drop customers*/sessions*.csv "
              f"files into {settings.landing} (rejected files and quarantined rows say why nothing was kept)")
    champion = settings.path("models", "champion.json")
    if champion.exists():
        version = json.loads(champion.read_text())["version"]
        print(f"serving model: {version}")
    for card_path in sorted(settings.path("models").glob("*/model_card.json"))[-1:]:
        card = json.loads(card_path.read_text())
        metrics = card.get("metrics", {})
        print(
            f"latest model {card.get('version')}: status={card.get('status')} "
            f"auc_out_of_time={metrics.get('auc_out_of_time')} "
            f"auc_baseline_recency={metrics.get('auc_baseline_recency')}"
        )
        if card.get("status_reason"):
            print(f"  {card['status_reason']}")
    print(f"tables:  {build_resources(data_dir)['io_manager'].root}")  # the data directory or $ECOM_WAREHOUSE_URL
    print(f"exports: {settings.path('exports')}")
    print(f"reports: {settings.path('reports')}")
    print("UI:      make dev  (dagster dev -w workspace.yaml on http://127.0.0.1:3000)")


def cli_run(args) -> int:
    from ecom_assets.instance import prepare_dagster_home
    from ecom_assets.settings import DATA_DIR_ENV, default_data_dir

    data_dir = Path(args.data_dir or default_data_dir()).resolve()
    os.environ[DATA_DIR_ENV] = str(data_dir)  # before definitions are imported
    prepare_dagster_home(data_dir)

    import dagster as dg

    from ecom_assets.ingest import ingest_landing

    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        summary = ingest_landing(instance, data_dir)
        print(summary)
        profile_new_drops(instance, data_dir)
        result = build_all(instance, as_of=args.as_of, retrain=args.retrain,
                           tags={"ecom/trigger": "manual"} if args.retrain else None)
        if result.success and not args.no_automation:
            from ecom_assets.monitoring import run_automation_once

            print(run_automation_once(instance, data_dir))
    _print_summary(data_dir, result, time.perf_counter() - started)
    return 0 if result.success else 1
