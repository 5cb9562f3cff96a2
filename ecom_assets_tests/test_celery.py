"""Steps executed by a real Celery worker process through the RabbitMQ broker on 127.0.0.1:5672."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml

from ecom_assets.celery import celery_config, resolved_celery_build_job
from ecom_assets.ingest import ingest_landing
from ecom_assets.instance import prepare_dagster_home
from ecom_assets.settings import DATA_DIR_ENV
from ecom_assets_tests.ingest_helpers import CUSTOMERS_HEADER, SESSIONS_HEADER, drop

pytestmark = pytest.mark.services
BIN = Path(sys.executable).parent


@pytest.fixture
def worker(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(data_dir))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    prepare_dagster_home(data_dir)  # a persistent instance on disk, shared with the worker
    config = tmp_path / "celery.yaml"
    config.write_text(yaml.safe_dump({"execution": {"config": celery_config()}}))
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(config),
         "-n", f"ecom-test-{os.getpid()}@%h", "--", "--concurrency=1", "--pool=solo"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},  # the worker runs `celery`
    )
    deadline = time.time() + 60
    while "ready" not in (tmp_path / "worker.log").read_text() and time.time() < deadline:
        if process.poll() is not None:
            pytest.fail("celery worker exited: " + (tmp_path / "worker.log").read_text()[-2000:])
        time.sleep(0.5)
    yield process, config
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def test_build_steps_run_in_the_celery_worker(worker, data_dir) -> None:
    process, config = worker
    drop(data_dir, "customers.csv", CUSTOMERS_HEADER + "\nC1,30,Female,Ghana,2023-01-01\nC2,41,Male,India,2023-02-01\n")
    drop(data_dir, "sessions_1.csv", SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,1,19.99\nS2,C2,2024-01-03,Home,60,0,0\n")
    with dg.DagsterInstance.get() as instance:
        ingest_landing(instance, data_dir)
        result = dg.execute_job(
            dg.reconstructable(resolved_celery_build_job), instance=instance,
            run_config={"execution": {"config": celery_config()}},
        )
        assert result.success
        steps = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_SUCCESS]
        assert {e.step_key for e in steps} == {"clean_customers", "clean_sessions", "quarantine_summary",
                                                 "customer_history", "customer_features"}
        # each step ran in a process started by the worker, not in this test process
        assert all(e.pid not in (None, os.getpid()) for e in steps)
    assert (data_dir / "warehouse" / "customer_features.parquet").exists()
    assert "succeeded" in (config.parent / "worker.log").read_text()
