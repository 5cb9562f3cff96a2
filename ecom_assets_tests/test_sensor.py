"""landing_zone_sensor on an ephemeral instance: stability, idempotence, caps, and the accounting check."""

import json
import os
import time

import dagster as dg
import pytest
import polars as pl

from ecom_assets.clean import clean_customers, clean_sessions
from ecom_assets.ingest import ingest_landing, raw_customers, raw_sessions
from ecom_assets.ingest import landing as landing_module
from ecom_assets.ingest import parse as parse_module
from ecom_assets.ingest.sensor import landing_zone_sensor, plan_tick, resolved_ingest_jobs
from ecom_assets.ingest import assets as assets_module
from ecom_assets.ingest.assets import ACCOUNTING_CHECK, locate_drop
from ecom_assets.ingest.landing import HASHED_TAG
from ecom_assets.resources import build_resources
from ecom_assets.settings import EcomSettings
from ecom_assets_tests.ingest_helpers import SESSIONS_HEADER, drop, rejected_reasons


def tick(instance, resources, cursor=None) -> tuple[dg.SensorResult, str]:
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    result = landing_zone_sensor(context)
    return result, result.cursor


def test_new_file_runs_once_after_it_is_stable(data_dir, instance, resources) -> None:
    drop(data_dir, "sessions_1.csv", SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,1,19.99\n")
    drop(data_dir, ".sessions_2.csv", "hidden")
    drop(data_dir, "sessions_3.csv.part", "being written")
    first, cursor = tick(instance, resources)
    assert not first.run_requests  # seen once: maybe still being written
    second, cursor = tick(instance, resources, cursor)
    assert len(second.run_requests) == 1
    request = second.run_requests[0]
    assert request.partition_key.startswith("sessions_1.csv__") and request.run_key == request.partition_key
    assert request.job_name == "ingest_sessions_job"
    (add,) = second.dynamic_partitions_requests
    assert add.partitions_def_name == "sessions_files" and add.partition_keys == [request.partition_key]
    # the run is queued: the next tick leaves the file alone
    third, cursor = tick(instance, resources, cursor)
    assert not third.run_requests and (data_dir / "landing" / "sessions_1.csv").exists()


def test_file_still_growing_waits(data_dir, instance, resources) -> None:
    path = drop(data_dir, "sessions_1.csv", SESSIONS_HEADER + "\n")
    _, cursor = tick(instance, resources)
    with path.open("a") as handle:  # the export is still being appended to
        handle.write("S1,C1,2024-01-02,Books,120,1,19.99\n")
    fresh = time.time() + 5
    os.utime(path, (fresh, fresh))  # a new signature, and the last write is recent: not settled yet
    result, cursor = tick(instance, resources, cursor)
    assert not result.run_requests
    result, _ = tick(instance, resources, cursor)
    assert len(result.run_requests) == 1


def test_same_bytes_dropped_again_never_run_again(data_dir, instance, resources) -> None:
    content = SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,1,19.99\n"
    drop(data_dir, "sessions_1.csv", content)
    ingest_landing(instance, data_dir)
    drop(data_dir, "sessions_1.csv", content)
    _, cursor = tick(instance, resources)
    result, _ = tick(instance, resources, cursor)
    assert not result.run_requests
    assert "already ingested" in rejected_reasons(data_dir)["sessions_1.csv"]


def test_run_requests_are_capped_per_tick_and_all_files_eventually_ingested_once(data_dir, instance) -> None:
    files = 12
    for i in range(files):
        drop(data_dir, f"sessions_{i:02d}.csv", SESSIONS_HEADER + f"\nS{i},C1,2024-01-02,Books,120,0,0\n")
    resources = build_resources(data_dir)
    resources["settings"] = EcomSettings(data_dir=str(data_dir), max_runs_per_tick=5)
    job = resolved_ingest_jobs(resources)["sessions"]  # raw_sessions and sessions_drop_profile
    requested_keys: list[str] = []
    per_tick: list[int] = []
    result, cursor = tick(instance, resources)  # first sight: every file may still be being written
    assert not result.run_requests
    for _ in range(10):
        result, cursor = tick(instance, resources, cursor)
        per_tick.append(len(result.run_requests))
        for add in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys))
        for request in result.run_requests:  # what the daemon would launch: the whole ingest job
            requested_keys.append(request.run_key)
            assert job.execute_in_process(partition_key=request.partition_key, instance=instance).success
        if not any((data_dir / "landing").iterdir()):
            break
    assert per_tick[:3] == [5, 5, 2]
    assert len(requested_keys) == len(set(requested_keys)) == files
    assert len(list((data_dir / "archive").glob("sessions_*.csv"))) == files
    assert sorted(instance.get_dynamic_partitions("sessions_files")) == sorted(requested_keys)
    ingested = pl.read_parquet(data_dir / "warehouse" / "raw_sessions" / "*.parquet")
    assert ingested.height == files and ingested["session_id"].n_unique() == files


def test_a_tick_over_many_waiting_files_hashes_only_what_it_requests(data_dir, instance, monkeypatch) -> None:
    for i in range(200):
        drop(data_dir, f"sessions_{i:03d}.csv", SESSIONS_HEADER + f"\nS{i},C1,2024-01-02,Books,120,0,0\n")
    hashed = []
    real_sha = landing_module.sha256_of
    monkeypatch.setattr(landing_module, "sha256_of", lambda path: hashed.append(path.name) or real_sha(path))
    settings = EcomSettings(data_dir=str(data_dir), max_runs_per_tick=25)
    plan = plan_tick(settings, instance, {}, assume_stable=True)
    assert len(plan.requests) == 25 and plan.deferred == 175 and len(hashed) == 25
    hashed.clear()
    again = plan_tick(settings, instance, json.loads(plan.cursor()))  # runs still queued
    assert hashed == sorted(hashed) and len(hashed) == 25  # 25 new files hashed; the queued ones were cached
    assert not {r.run_key for r in again.requests} & {r.run_key for r in plan.requests}


def test_a_run_reads_the_file_its_tick_hashed_without_hashing_it_again(data_dir, instance, monkeypatch) -> None:
    """The tick hashes a drop into its partition key and tags the run with the file's identity (size, mtime,
    ctime, inode); the run takes that file for the drop while the identity holds (a 600 MB file is not read
    a second time) and hashes again once it changed: other bytes under the same name are never the drop."""
    path = drop(data_dir, "sessions_1.csv", SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,1,19.99\n")
    written = time.time() - 60
    os.utime(path, (written, written))  # settled a minute ago
    settings = EcomSettings(data_dir=str(data_dir))
    (request,) = plan_tick(settings, instance, {}, assume_stable=True).requests
    hashed = []
    real_sha = assets_module.sha256_of
    monkeypatch.setattr(assets_module, "sha256_of", lambda p: hashed.append(p.name) or real_sha(p))
    tag = request.tags[HASHED_TAG]
    assert locate_drop(settings, request.partition_key, tag) == (path, True) and not hashed
    path.write_text(SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,1,99.99\n")  # rewritten after the tick
    with pytest.raises(dg.Failure, match="neither in"):
        locate_drop(settings, request.partition_key, tag)
    assert hashed == ["sessions_1.csv"]


def test_a_file_written_just_before_its_hash_gives_no_identity_to_trust(data_dir, instance) -> None:
    """A write within the same timestamp tick as the hash could leave the stat unchanged: such a file's run
    hashes it again."""
    drop(data_dir, "sessions_1.csv", SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,1,19.99\n")
    (request,) = plan_tick(EcomSettings(data_dir=str(data_dir)), instance, {}, assume_stable=True).requests
    assert HASHED_TAG not in request.tags


def test_accounting_check_fails_when_a_row_is_dropped(data_dir, instance, resources, monkeypatch) -> None:
    real_split = parse_module.split_rows

    def losing_split(table, kind, today, **options):
        clean, quarantined, duplicates = real_split(table, kind, today, **options)
        return clean.head(clean.height - 1), quarantined, duplicates  # a bug that loses a row

    monkeypatch.setattr(parse_module, "split_rows", losing_split)
    drop(data_dir, "sessions_1.csv", SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,1,19.99\nS2,C1,2024-01-02,Books,1,0,0\n")
    settings = EcomSettings(data_dir=str(data_dir))
    plan = plan_tick(settings, instance, {}, assume_stable=True)
    instance.add_dynamic_partitions("sessions_files", plan.new_partitions["sessions"])
    result = dg.materialize([raw_sessions], partition_key=plan.requests[0].partition_key, instance=instance,
                            resources=resources, raise_on_error=False)
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == ACCOUNTING_CHECK]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "1 rows unaccounted" in check.description
    stored = json.loads(next((data_dir / "quarantine" / "sessions").glob("*.json")).read_text())
    assert stored["rows_in"] == 2 and stored["clean"] == 1
    assert pl.read_parquet(next((data_dir / "warehouse" / "raw_sessions").glob("*.parquet"))).height == 1
    # the clean tables do not build on that drop, in this run or any later one, and say so
    cleaning = [clean_customers, clean_sessions]
    built = dg.materialize([raw_customers, raw_sessions, *cleaning], selection=cleaning, instance=instance,
                           resources=resources, raise_on_error=False)
    assert built.success
    held = {c.asset_key.path[-1]: c for c in built.get_asset_check_evaluations()
            if c.check_name == "every_drop_accounted"}
    assert not held["clean_sessions"].passed and "1 rows unaccounted" in held["clean_sessions"].description
    assert held["clean_customers"].passed
    meta = built.asset_materializations_for_node("clean_sessions")[0].metadata
    assert meta["drops_held_back"].value == 1 and meta["dagster/row_count"].value == 0
