"""The one `Definitions` object: every domain contributes its own `defs`, merged here with the named
jobs, their sensors and schedule (`jobs.py`), the resources, and markdown-escaped descriptions."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dagster as dg

from ecom_assets.celery import celery_build_job
from ecom_assets.jobs import DOMAINS, JOBS, SCHEDULES, SENSORS
from ecom_assets.metadata import escape_spec
from ecom_assets.resources import build_resources
from ecom_assets.settings import DATA_DIR_ENV

# Resources resolve $ECOM_DATA_DIR when a run starts; `dagster dev` started without the Makefile
# gets the repository's ./data folder.
os.environ.setdefault(DATA_DIR_ENV, str(Path("data").resolve()))

with warnings.catch_warnings():  # map_asset_specs is a Dagster "preview" API; its notice is not for on-call
    warnings.simplefilter("ignore", dg.PreviewWarning)
    defs = dg.Definitions.merge(
        *DOMAINS,
        dg.Definitions(
            jobs=[*JOBS, celery_build_job], sensors=SENSORS, schedules=SCHEDULES, resources=build_resources(),
            # Every run executes its steps in its own process, one after another. Dagster's default
            # (a subprocess per step) spends ~2 s loading the code location for every step, longer
            # than most of these steps take, and polars already uses every core inside a step. On the
            # benchmark's data (2 cores): one drop's refresh 18.5 s -> 4.6 s, the daily refresh
            # 32.7 s -> 13.9 s. Parallel steps across machines: `celery_build_job` (docs/scaling.md).
            executor=dg.in_process_executor,
        ),
    ).map_asset_specs(func=escape_spec)  # the UI renders descriptions as markdown: show them as written
