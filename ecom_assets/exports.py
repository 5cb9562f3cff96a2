"""CSV exports that are safe to open in a spreadsheet.

A text cell starting with `=`, `+`, `-`, `@` (or tab / carriage return) would be evaluated as a
formula by Excel or LibreOffice (CSV injection). Such cells get a leading apostrophe, which the
spreadsheet shows as text; numeric columns stay numbers so sorting and sums still work.

Figures are rounded for people, not machines: money to 2 decimals, every other fraction
(probabilities, rates, lifts) to 4, p- and q-values to 3 significant digits (a q-value of 4e-140
rounded to 4 decimals would read 0, which no test can give), and counts stored as floats (a customer's purchases
averaged over nothing, days since an event) written as integers. A column is money or a count by its
name (MONEY, COUNT), or because the caller says so.
"""

import re
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from ecom_assets.io import atomic_write_bytes

FORMULA_START = r"^[=+\-@\t\r]"
MONEY = re.compile(r"(^|_)(revenue|amount|aov|price|spend|order_value|expected_value|value_at_risk|clv|monetary)(_|$)",
                   re.IGNORECASE)
COUNT = re.compile(r"^(n|num)_|(^|_)(count|customers|buyers|purchases|sessions|orders|views|carts|days)(_|$)",
                   re.IGNORECASE)
SIGNIFICANCE = re.compile(r"(^|_)(p|q)_?value(_|$)", re.IGNORECASE)
MONEY_DECIMALS, FRACTION_DECIMALS, SIGNIFICANCE_DIGITS = 2, 4, 3


def round_figures(frame: pl.DataFrame, money: Iterable[str] = (), counts: Iterable[str] = ()) -> pl.DataFrame:
    """Money columns to 2 decimals, whole-number count columns to Int64, every other float to 4 decimals.
    A float column named like a count keeps its decimals if any value has some (a mean, not a count)."""
    money, counts = set(money), set(counts)
    exprs = []
    for name, dtype in frame.schema.items():
        if not dtype.is_float():
            continue
        column = pl.col(name)
        if name in counts or (COUNT.search(name) and name not in money and _whole(frame[name])):
            exprs.append(column.round(0).cast(pl.Int64))
        elif name in money or MONEY.search(name):
            exprs.append(column.round(MONEY_DECIMALS))
        elif SIGNIFICANCE.search(name):
            # through the decimal text: polars' round_sig_figs leaves 4.1199999999999986e-140 for the CSV to print
            exprs.append(column.map_elements(lambda v: float(f"{v:.{SIGNIFICANCE_DIGITS}g}"), return_dtype=pl.Float64))
        else:
            exprs.append(column.round(FRACTION_DECIMALS))
    return frame.with_columns(exprs)


def _whole(values: pl.Series) -> bool:
    finite = values.drop_nulls().drop_nans()
    return bool(finite.is_finite().all() and (finite == finite.round(0)).all())


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


def write_safe_csv(frame: pl.DataFrame, path: str | Path, money: Iterable[str] = (), counts: Iterable[str] = ()) -> Path:
    """Write `frame` as a spreadsheet-safe CSV with rounded figures (`round_figures`), atomically."""
    path = Path(path)
    safe = neutralise_formulas(round_figures(frame, money, counts))
    atomic_write_bytes(path, lambda tmp: safe.write_csv(tmp, date_format="%Y-%m-%d"))
    return path
