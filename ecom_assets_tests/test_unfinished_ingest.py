"""An ingest run that stopped between its steps (Ctrl-C, a killed process, a failed step) is finished by
the next `ecom-assets run` and the next landing sensor tick, never lost (the tryout's Ctrl-C between
raw_orders and raw_order_sessions archived the file and no later run ever made its sessions).

The interruption is reproduced as the state it leaves: the drop's partition registered, its first step
(raw_orders / raw_events: file archived, lines stored) materialized, its sessions step not."""

import dagster as dg
import pytest

from ecom_assets.clean import clean_customers, clean_sessions
from ecom_assets.ingest import RAW_ASSETS, SESSION_ASSETS, ingest_landing
from ecom_assets.ingest.partitions import PARTITIONS, partition_key
from ecom_assets.ingest.landing import sha256_of
try:
    from ecom_assets.ingest.sensor import ingest_runs_under_way, landing_zone_sensor, unfinished_drops
except ImportError:
    pass
from ecom_assets.definitions import defs
from ecom_assets.settings import DATA_DIR_ENV, EcomSettings
from ecom_assets_tests.ingest_helpers import drop, ingest_and_clean

# Five web-shop orders (one of two lines, one a pure return, which makes no session) and a small
# click stream of two visitors, the second one back after 40 minutes (a new session).
ORDERS = """order_id,customer_id,order_time,product_id,category,quantity,line_amount
#2001,C1,2024-04-01T09:00:00Z,SKU-1,Home,1,18.00
#2001,C1,2024-04-01T09:00:00Z,SKU-2,Books,2,25.00
#2002,C2,2024-04-02T11:30:00Z,SKU-3,Garden,1,40.00
#2003,C1,2024-04-03T08:10:00Z,SKU-1,Home,-1,-18.00
#2004,C3,2024-04-03T17:45:00Z,SKU-4,Toys,3,21.00
#2005,C2,2024-04-05T12:00:00Z,SKU-2,Books,1,12.50
"""
EVENTS = """event_time,event_type,customer_id,product_id,price
2024-04-01T10:00:00Z,view,U1,P1,5
2024-04-01T10:05:00Z,cart,U1,P1,5
2024-04-01T10:07:00Z,purchase,U1,P1,5
2024-04-01T10:00:00Z,view,U2,P2,9
2024-04-01T10:40:00Z,view,U2,P3,4
"""
DROPS = {"orders": ("orders_april.csv", ORDERS, 4), "events": ("events_april.csv", EVENTS, 3)}  # sessions each makes


def interrupt_after_first_step(data_dir, instance, resources, kind: str) -> str:
    """Drop the file and run only the first step of its ingest job, as a run stopped before its sessions step."""
    name, text, _ = DROPS[kind]
    key = partition_key(name, sha256_of(drop(data_dir, name, text)))
    instance.add_dynamic_partitions(PARTITIONS[kind].name, [key])
    raw, sessions = RAW_ASSETS[kind], SESSION_ASSETS[kind]
    assert dg.materialize([raw, sessions], selection=[raw], partition_key=key, instance=instance,
                          resources=resources).success
    assert not (data_dir / "landing" / name).exists()  # archived: the landing scan no longer sees it
    assert key not in instance.get_materialized_partitions(sessions.key)
    return key


@pytest.mark.parametrize("kind", sorted(DROPS))
def test_the_next_cli_run_finishes_an_ingest_stopped_before_its_sessions(kind, data_dir, instance, resources) -> None:
    key = interrupt_after_first_step(data_dir, instance, resources, kind)
    (unfinished,) = unfinished_drops(EcomSettings(data_dir=str(data_dir)), instance)
    assert (unfinished.key, unfinished.steps) == (key, [SESSION_ASSETS[kind].key])

    tables = ingest_and_clean(data_dir, instance, resources)
    assert f"finished 1 interrupted ingest(s): {DROPS[kind][0]} ({SESSION_ASSETS[kind].key.to_user_string()})" \
        in tables["summary"]
    assert "ingested 0 file(s): 0 rows in" in tables["summary"]  # its rows were counted once, by the first run
    assert tables["sessions"].height == DROPS[kind][2]
    assert set(tables["sessions"]["source_file"]) == {key}
    checks = {c.check_name: c for c in tables["result"].get_asset_check_evaluations()
              if c.asset_key == clean_sessions.key}
    assert checks["rows_accounted_for"].passed and checks["every_drop_accounted"].passed
    # done: a further run neither resumes nor re-ingests it, and the sessions are not counted twice
    assert unfinished_drops(EcomSettings(data_dir=str(data_dir)), instance) == []
    again = ingest_and_clean(data_dir, instance, resources)
    assert "interrupted" not in again["summary"] and "ingested 0 file(s)" in again["summary"]
    assert again["sessions"].height == DROPS[kind][2]


def test_stored_lines_without_their_sessions_fail_clean_sessions_check(data_dir, instance, resources) -> None:
    interrupt_after_first_step(data_dir, instance, resources, "orders")
    result = dg.materialize([*RAW_ASSETS.values(), *SESSION_ASSETS.values(), clean_customers, clean_sessions],
                            selection=[clean_customers, clean_sessions], instance=instance, resources=resources)
    (check,) = [c for c in result.get_asset_check_evaluations()
                if c.asset_key == clean_sessions.key and c.check_name == "every_drop_accounted"]
    assert not check.passed
    assert "orders_april.csv: raw_orders is stored but raw_order_sessions is not" in check.description


@pytest.mark.parametrize("kind", sorted(DROPS))
def test_the_landing_sensor_resumes_a_stopped_ingest_once_no_run_is_under_way(kind, data_dir, instance, resources,
                                                                               monkeypatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))  # the one `defs` object follows this data dir
    key = interrupt_after_first_step(data_dir, instance, resources, kind)
    job = defs.resolve_job_def(f"ingest_{kind}_job")

    # the run that ingests the drop is still going: its sessions step is not missing, only not done yet
    under_way = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED, tags={"dagster/partition": key})
    assert key in ingest_runs_under_way(instance)
    result = landing_zone_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert not result.run_requests

    instance.report_run_failed(under_way)  # it stopped before its sessions step
    result = landing_zone_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    (request,) = result.run_requests
    assert request.partition_key == key and request.asset_selection == [SESSION_ASSETS[kind].key]
    assert request.run_key.startswith(f"{key}@resume-")
    run = job.execute_in_process(instance=instance, partition_key=key, tags=request.tags,
                                 asset_selection=request.asset_selection)
    assert run.success
    assert key in instance.get_materialized_partitions(SESSION_ASSETS[kind].key)
    assert not landing_zone_sensor(dg.build_sensor_context(instance=instance, resources=resources)).run_requests


def test_an_archived_drop_whose_raw_table_was_never_stored_is_ingested_again(data_dir, instance, resources) -> None:
    """Killed after the original moved to archive/ but before its lines were stored: redone from the archive."""
    name, text, sessions = DROPS["orders"]
    key = interrupt_after_first_step(data_dir, instance, resources, "orders")
    instance.wipe_assets([RAW_ASSETS["orders"].key])  # as if the raw table's write never finished
    (data_dir / "warehouse" / "raw_orders").rename(data_dir / "warehouse" / "raw_orders.lost")
    (unfinished,) = unfinished_drops(EcomSettings(data_dir=str(data_dir)), instance)
    assert unfinished.steps == [RAW_ASSETS["orders"].key, SESSION_ASSETS["orders"].key]
    summary = ingest_landing(instance, data_dir)
    assert f"finished 1 interrupted ingest(s): {name} (raw_orders, raw_order_sessions)" in summary
    assert key in instance.get_materialized_partitions(SESSION_ASSETS["orders"].key)
    assert unfinished_drops(EcomSettings(data_dir=str(data_dir)), instance) == []
