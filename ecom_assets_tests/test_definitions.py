"""The code location as the UI sees it: it loads, and every asset explains itself."""

import dagster as dg
import polars as pl

from ecom_assets.definitions import defs
from ecom_assets.resources import build_resources
from ecom_assets.settings import DATA_DIR_ENV, EcomSettings

GROUPS = {"ingest", "clean", "features", "churn", "monitoring", "insights"}


def test_code_location_loads() -> None:
    dg.Definitions.validate_loadable(defs)


def test_every_asset_has_description_owner_group_kinds_and_column_schema() -> None:
    specs = list(defs.resolve_all_asset_specs())
    problems = []
    for spec in specs:
        name = spec.key.to_user_string()
        if not (spec.description or "").strip():
            problems.append(f"{name}: no description")
        if not spec.owners:
            problems.append(f"{name}: no owner")
        if spec.group_name not in GROUPS:
            problems.append(f"{name}: group {spec.group_name!r} is not one of {sorted(GROUPS)}")
        if not spec.kinds:
            problems.append(f"{name}: no kinds")
        if "dagster/column_schema" not in spec.metadata:
            problems.append(f"{name}: no column schema metadata")
    assert not problems, "\n".join(problems)


@dg.asset
def where_am_i(settings: EcomSettings) -> pl.DataFrame:
    return pl.DataFrame({"data_dir": [settings.data_dir]})


def test_resources_follow_the_data_dir_at_run_time(tmp_path, monkeypatch, instance) -> None:
    # The one `defs` object is imported once; the CLI and tests point it elsewhere afterwards.
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    result = dg.materialize([where_am_i], resources=build_resources(), instance=instance)
    assert result.output_for_node("where_am_i")["data_dir"][0] == str(tmp_path)
    assert (tmp_path / "warehouse" / "where_am_i.parquet").exists()


def test_runs_execute_in_process_except_the_celery_job() -> None:
    """Launched runs (sensor, automation, the UI) run their steps in the run's own process; only
    `celery_build_job` hands steps to Celery workers."""
    assert defs.resolve_job_def("build_all_job").executor_def.name == "in_process"
    assert defs.resolve_job_def("ingest_sessions_job").executor_def.name == "in_process"
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "in_process"
    assert defs.resolve_job_def("celery_build_job").executor_def.name == "celery"
