"""CSV exports that are safe to open in a spreadsheet.

A text cell starting with `=`, `+`, `-`, `@` (or tab / carriage return) would be evaluated as a
formula by Excel or LibreOffice (CSV injection). Such cells get a leading apostrophe, which the
spreadsheet shows as text; numeric columns are left untouched so sorting and sums still work.
"""

from pathlib import Path

import polars as pl

from ecom_assets.io import atomic_write_bytes

FORMULA_START = r"^[=+\-@\t\r]"


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    text = [c for c, dtype in frame.schema.items() if dtype in (pl.String, pl.Categorical, pl.Enum)]
    list_text = [c for c, dtype in frame.schema.items() if dtype == pl.List(pl.String)]
    return frame.with_columns(
        *[
            pl.when(pl.col(c).cast(pl.String).str.contains(FORMULA_START))
            .then(pl.lit("'") + pl.col(c).cast(pl.String))
            .otherwise(pl.col(c).cast(pl.String))
            .alias(c)
            for c in text
        ],
        *[pl.col(c).list.join("; ").alias(c) for c in list_text],
    ).with_columns(
        pl.when(pl.col(c).str.contains(FORMULA_START)).then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c)
        for c in list_text
    )


def write_safe_csv(frame: pl.DataFrame, path: str | Path) -> Path:
    """Write `frame` as a spreadsheet-safe CSV, atomically."""
    path = Path(path)
    safe = neutralise_formulas(frame)
    atomic_write_bytes(path, lambda tmp: safe.write_csv(tmp, date_format="%Y-%m-%d"))
    return path
