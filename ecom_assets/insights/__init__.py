"""Domain package `insights`: pure polars functions plus thin Dagster wrappers."""

import dagster as dg

defs = dg.Definitions()
