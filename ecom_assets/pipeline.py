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


def _as_of_run_config(as_of: str | None) -> dict:
    if not as_of:
        return {}
    from ecom_assets.features import AS_OF_CONFIG_OPS

    return {"ops": {op: {"config": {"as_of": as_of}} for op in AS_OF_CONFIG_OPS}}


def build_all(instance, as_of: str | None = None, tags: dict | None = None):
    """Materialize every asset that is not a per-file ingest partition, in one run."""
    from ecom_assets.definitions import defs

    job = defs.resolve_job_def(BUILD_ALL_JOB)
    return job.execute_in_process(
        instance=instance, run_config=_as_of_run_config(as_of), raise_on_error=False, tags=tags
    )


def _print_summary(data_dir: Path, result, seconds: float) -> None:
    from ecom_assets.settings import EcomSettings

    settings = EcomSettings(data_dir=str(data_dir))
    print(f"\nbuild run {result.run_id}: {'success' if result.success else 'FAILED'} in {seconds:.1f} s")
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
    print(f"tables:  {settings.path('warehouse')}")
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
        result = build_all(instance, as_of=args.as_of)
        if result.success and not args.no_automation:
            from ecom_assets.monitoring import run_automation_once

            print(run_automation_once(instance, data_dir))
    _print_summary(data_dir, result, time.perf_counter() - started)
    return 0 if result.success else 1
