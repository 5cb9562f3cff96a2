"""The instance on the real PostgreSQL server (127.0.0.1:5432): sensor and materializations land in
PostgreSQL storage. A scratch database is created and dropped for the test."""

import uuid

import dagster as dg
import psycopg2
import pytest

from ecom_assets.clean import clean_customers, clean_sessions
from ecom_assets.ingest import ingest_landing, raw_campaigns, raw_customers, raw_sessions
from ecom_assets.ingest.sensor import landing_zone_sensor
from ecom_assets.instance import PG_URL_ENV, prepare_dagster_home
from ecom_assets_tests.ingest_helpers import CUSTOMERS_HEADER, SESSIONS_HEADER, drop

SERVER = "postgresql://postgres@127.0.0.1:5432"
pytestmark = pytest.mark.services


@pytest.fixture
def scratch_db():
    name = f"ecom_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(f"{SERVER}/postgres", connect_timeout=5)
    except psycopg2.OperationalError as err:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not running (start it: see README 'Services'): {err}")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    yield f"{SERVER}/{name}"
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


def test_sensor_and_materializations_in_postgres(scratch_db, tmp_path, monkeypatch, data_dir, resources) -> None:
    # SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3; dagster-postgres ships psycopg2
    monkeypatch.setenv(PG_URL_ENV, scratch_db.replace("postgresql://", "postgresql+psycopg2://"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    home = prepare_dagster_home(data_dir)
    assert "postgres" in (home / "dagster.yaml").read_text()
    drop(data_dir, "customers.csv", CUSTOMERS_HEADER + "\nC1,30,Female,Ghana,2023-01-01\n")
    drop(data_dir, "sessions_1.csv", SESSIONS_HEADER + "\nS1,C1,2024-01-02,Books,120,1,19.99\n")
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        first = landing_zone_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        second = landing_zone_sensor(dg.build_sensor_context(instance=instance, resources=resources,
                                                             cursor=first.cursor))
        assert len(second.run_requests) == 2
        ingest_landing(instance, data_dir)
        result = dg.materialize([raw_customers, raw_sessions, raw_campaigns, clean_customers, clean_sessions],
                                selection=[clean_customers, clean_sessions], instance=instance, resources=resources)
        assert result.success
    with psycopg2.connect(scratch_db) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from event_logs where dagster_event_type = 'ASSET_MATERIALIZATION'")
        # two raw partitions, the sessions drop's profile (same run as its ingest) and two clean tables
        assert cur.fetchone()[0] == 5
        cur.execute("select count(*) from runs")
        assert cur.fetchone()[0] == 3
