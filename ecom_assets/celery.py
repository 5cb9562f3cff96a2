"""Running the graph's steps on Celery workers (dagster-celery, RabbitMQ broker).

Each step of a run becomes a Celery task; any machine with this package, the same instance
storage (PostgreSQL) and the same data directory (a shared file system or object store) can run
`dagster-celery worker start -A dagster_celery.app -y celery.yaml` and take steps. See
docs/scaling.md.
"""

import os

import dagster as dg
from dagster_celery import celery_executor

BROKER_ENV = "ECOM_CELERY_BROKER"
DEFAULT_BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"


def broker_url() -> str:
    return os.environ.get(BROKER_ENV, DEFAULT_BROKER)


def celery_config(broker: str | None = None) -> dict:
    """The executor config block (also the worker's -y YAML)."""
    return {"broker": broker or broker_url(), "backend": "rpc://"}


celery_build_job = dg.define_asset_job(
    "celery_build_job",
    selection=dg.AssetSelection.assets("clean_customers", "clean_sessions", "quarantine_summary", "customer_history",
                                      "customer_features"),
    executor_def=celery_executor,
    description="Clean tables and customer features with every step on a Celery worker (scale-out demo and test).",
)


def resolved_celery_build_job() -> dg.JobDefinition:
    """Module-level accessor so `dg.reconstructable` can rebuild the job inside a worker."""
    from ecom_assets.definitions import defs

    return defs.resolve_job_def("celery_build_job")
