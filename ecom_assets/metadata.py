"""Metadata helpers shared by every domain: column schemas and readable tables for the UI."""

import dagster as dg
import polars as pl

_NUMERIC = (pl.Float32, pl.Float64)


def column_schema(columns: dict[str, str]) -> dict:
    """`{"dagster/column_schema": TableSchema}` from `{name: "type - meaning"}`."""
    return {
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn(name, *(part.strip() for part in text.split(" - ", 1)))
                if " - " in text
                else dg.TableColumn(name, text)
                for name, text in columns.items()
            ]
        )
    }


def md_table(frame: pl.DataFrame, max_rows: int = 20, digits: int = 3) -> str:
    """A markdown table of the first `max_rows` rows (floats rounded) for metadata."""
    if frame.is_empty():
        return "_(no rows)_"
    shown = frame.head(max_rows).with_columns(pl.col(c).round(digits) for c in frame.columns
                                              if frame.schema[c] in _NUMERIC)
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = ["| " + " | ".join("" if v is None else str(v) for v in row) + " |" for row in shown.iter_rows()]
    more = [f"\n_{frame.height - max_rows:,} more rows_"] if frame.height > max_rows else []
    return "\n".join([header, rule, *rows, *more])
