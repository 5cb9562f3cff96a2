"""Domain package `ingest`: pure polars functions plus thin Dagster wrappers."""

import dagster as dg

defs = dg.Definitions()
