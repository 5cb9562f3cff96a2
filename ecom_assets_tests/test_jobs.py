"""The named jobs and what requests them: every run the Runs page lists says what kind of run it
is, per-drop work stays per drop, the refresh after drops is one run, the daily one only after new data."""

import shutil

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from ecom_assets.definitions import defs
from ecom_assets.generate import generate
from ecom_assets.ingest import ingest_landing
from ecom_assets.jobs import (
    DAILY_REFRESH_JOB,
    DROP_REFRESH_JOB,
    drop_refresh_sensor,
    keys_tagged,
    plan_daily_refresh,
    plan_drop_refresh,
    refreshed_by_drops,
)
from ecom_assets.automation import REFRESH_FIRST_MODEL, REFRESH_PER_DROP
from ecom_assets.settings import DATA_DIR_ENV

PROFILE = dg.AssetKey("sessions_drop_profile")


@pytest.fixture
def three_drops(tmp_path, data_dir):
    """A small shop's export in three chronological sessions files (plus customers and campaigns),
    staged outside landing so that each test drops them one at a time."""
    staged = tmp_path / "staged"
    generate(staged, customers=400, days=300, files=3, seed=5)
    return staged


def _land(staged, data_dir, name):
    shutil.move(staged / name, data_dir / "landing" / name)


def test_three_drops_profile_three_times(three_drops, data_dir, instance, monkeypatch) -> None:
    """Every new drop profiles itself in its own ingest run; nothing re-profiles the earlier drops
    (formerly an eager condition over the all-partitions input re-ran 1, then 2, then 3 of them)."""
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    _land(three_drops, data_dir, "customers.csv")
    drops = sorted(p.name for p in three_drops.glob("sessions_*.csv"))
    assert len(drops) == 3
    cursor = None
    for name in drops:
        _land(three_drops, data_dir, name)
        ingest_landing(instance, data_dir)
        # nothing asks for the profile again: the refresh after drops does not select it, and no
        # automation condition is left anywhere (test_every_kind_of_run_has_its_named_job)
        decision = plan_drop_refresh(instance, cursor, has_model=True)
        assert decision.request is not None and PROFILE not in decision.request.asset_selection
        cursor = decision.cursor
    profiles = instance.fetch_materializations(PROFILE, limit=100).records
    assert len(profiles) == len(drops)
    assert sorted(r.partition_key.split("__")[0] for r in profiles) == drops
    runs = {r.dagster_run.job_name for r in instance.get_run_records()}
    assert runs == {"ingest_customers_job", "ingest_sessions_job"}  # not __ephemeral_asset_job__


def test_drop_refresh_sensor_one_run_per_batch_of_drops(three_drops, data_dir, instance, resources) -> None:
    context = dg.build_sensor_context(instance=instance, resources=resources)
    assert isinstance(drop_refresh_sensor(context), dg.SkipReason)  # no data yet

    for name in ("customers.csv", "sessions_001.csv", "sessions_002.csv"):
        _land(three_drops, data_dir, name)
    ingest_landing(instance, data_dir)
    request = drop_refresh_sensor(context)
    assert isinstance(request, dg.RunRequest) and request.job_name == DROP_REFRESH_JOB
    # no model yet: this refresh trains the first one, and says so
    # everything the drop refresh holds but the tables only order-line and event drops feed
    only_orders_or_events = {dg.AssetKey(name) for name in ("clean_order_lines", "clean_returns", "clean_events")}
    assert set(request.asset_selection) == (set(keys_tagged(REFRESH_PER_DROP)) | set(keys_tagged(REFRESH_FIRST_MODEL))) \
        - only_orders_or_events
    assert request.tags["ecom/trigger"] == "initial"
    # a sessions drop alone refreshes what lies downstream of sessions (not clean_customers), and no model
    sessions_only = refreshed_by_drops([dg.AssetKey("raw_sessions")], has_model=True)
    assert dg.AssetKey("clean_customers") not in sessions_only and dg.AssetKey("churn_model") not in sessions_only
    assert {dg.AssetKey("clean_sessions"), dg.AssetKey("churn_risk_list")} <= set(sessions_only)
    assert isinstance(drop_refresh_sensor(context), dg.SkipReason)  # three ingest runs, one refresh

    # a drop whose ingest run is still going: wait for it rather than refresh twice
    _land(three_drops, data_dir, "sessions_003.csv")
    ingest_landing(instance, data_dir)
    running = create_run_for_test(instance, job_name="ingest_sessions_job", status=dg.DagsterRunStatus.STARTED)
    waiting = drop_refresh_sensor(context)
    assert isinstance(waiting, dg.SkipReason) and running.run_id[:8] in waiting.skip_message
    instance.report_run_canceled(running)
    again = drop_refresh_sensor(context)
    assert isinstance(again, dg.RunRequest) and again.run_key != request.run_key


def test_daily_refresh_only_after_new_data(three_drops, data_dir, instance) -> None:
    assert plan_daily_refresh(instance) == "no data yet"
    _land(three_drops, data_dir, "sessions_001.csv")
    ingest_landing(instance, data_dir)
    assert plan_daily_refresh(instance) is None  # due
    create_run_for_test(instance, job_name=DAILY_REFRESH_JOB, status=dg.DagsterRunStatus.SUCCESS)
    assert plan_daily_refresh(instance) == "no new drop since the last daily refresh"
    _land(three_drops, data_dir, "sessions_002.csv")
    ingest_landing(instance, data_dir)
    assert plan_daily_refresh(instance) is None


def test_every_kind_of_run_has_its_named_job() -> None:
    jobs = {job.name for job in defs.resolve_all_job_defs()}
    assert {"ingest_sessions_job", DROP_REFRESH_JOB, DAILY_REFRESH_JOB, "churn_retrain_job", "build_all_job"} <= jobs
    drop = defs.resolve_job_def(DROP_REFRESH_JOB).asset_layer.selected_asset_keys
    daily = defs.resolve_job_def(DAILY_REFRESH_JOB).asset_layer.selected_asset_keys
    assert dg.AssetKey("churn_risk_list") in drop and dg.AssetKey("kpi_dashboard") in daily
    assert drop & daily == {dg.AssetKey("kpi_dashboard")}  # it follows the churn list too
    # nothing is left to declarative automation, whose runs would be listed as __ASSET_JOB
    assert not any(condition for assets_def in defs.assets
                   for condition in assets_def.automation_conditions_by_key.values())


def test_a_later_drop_whose_rows_were_all_quarantined_is_not_called_a_first_drop(data_dir, instance) -> None:
    """Tryout: the 4th sessions drop of an Excel shop had 0 clean rows (every date unreadable) and its
    profile said "first drop: nothing to compare with"."""
    from ecom_assets.monitoring.assets import HEADER_ONLY, NO_ROWS_KEPT

    header = "session_id,customer_id,session_date,product_viewed,browsing_time_sec,purchase_made,purchase_amount\n"
    (data_dir / "landing" / "sessions_a.csv").write_text(
        header + "".join(f"S{i},C{i % 7},2024-03-{1 + i % 28:02d},Books,{30 + i},{i % 2},{(i % 2) * 12.5}\n"
                         for i in range(60)))
    ingest_landing(instance, data_dir)
    (data_dir / "landing" / "sessions_b.csv").write_text(
        header + "".join(f"T{i},C{i % 7},03/04/2024,Books,40,0,\n" for i in range(5)))  # day or month first? undeclared
    ingest_landing(instance, data_dir)
    latest = {r.partition_key.split("__")[0]: r for r in instance.fetch_materializations(PROFILE, limit=10).records}
    metadata = latest["sessions_b.csv"].asset_materialization.metadata
    assert metadata["state"].value == NO_ROWS_KEPT and metadata["rows"].value == 0
    # a header-only export (a shop's quiet day) is not "all quarantined or duplicates": it had no row at all
    (data_dir / "landing" / "sessions_c.csv").write_text(header)
    ingest_landing(instance, data_dir)
    latest = {r.partition_key.split("__")[0]: r for r in instance.fetch_materializations(PROFILE, limit=10).records}
    assert latest["sessions_c.csv"].asset_materialization.metadata["state"].value == HEADER_ONLY
