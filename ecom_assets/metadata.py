"""Metadata helpers shared by every domain: column schemas and readable tables for the UI."""

import re

import dagster as dg
import polars as pl

_NUMERIC = (pl.Float32, pl.Float64)
NO_DATA = "no data yet"  # what a table with zero rows says in its metadata and in `ecom-assets run`
_CODE_SPAN = re.compile(r"(`[^`]*`)")
# CommonMark lets a backslash escape any ASCII punctuation; these are the ones that change how text
# renders here: `<kind>` is read as an HTML tag and dropped, `>= 0` opening a line as a quote,
# `*`/`_` as emphasis, `[..]` as a link, `|` as a table cell border, `#` as a heading
_MD_SPECIAL = re.compile(r"([\\*_\[\]<>#|~])")


def says_no_data(metadata: dict) -> bool:
    """True when a materialization's metadata says "no data yet" (the IO manager's mark of a zero-row table),
    unless the asset read rows (`rows_in` > 0: quarantine_summary with nothing quarantined is not waiting for data)."""
    status, rows_in = (getattr(metadata.get(name), "value", metadata.get(name)) for name in ("status", "rows_in"))
    return status == NO_DATA and not rows_in


def md_escape(text: str | None) -> str | None:
    """`text` escaped so that a markdown renderer (the Dagster UI) shows it as written; `code spans`
    are left as they are (they already render literally)."""
    if not text:
        return text
    return "".join(part if part.startswith("`") else _MD_SPECIAL.sub(r"\\\1", part)
                   for part in _CODE_SPAN.split(text))


def escape_spec(spec: dg.AssetSpec) -> dg.AssetSpec:
    """The asset's description and column descriptions escaped for the UI (see `md_escape`)."""
    metadata = dict(spec.metadata)
    schema = metadata.get("dagster/column_schema")
    if isinstance(schema, dg.TableSchema):
        metadata["dagster/column_schema"] = dg.TableSchema(columns=[
            dg.TableColumn(c.name, c.type, md_escape(c.description), c.constraints, c.tags) for c in schema.columns])
    return spec.replace_attributes(description=md_escape(spec.description), metadata=metadata)


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


# the leading word of a column's type in `column_schema` texts -> its polars dtype; any other word
# (an enumeration such as "day | week") names string labels
_DTYPES = {"string": pl.String, "int": pl.Int64, "int64": pl.Int64, "float": pl.Float64, "float64": pl.Float64,
           "date": pl.Date, "bool": pl.Boolean, "datetime": pl.Datetime("us", "UTC")}


def empty_table(columns: dict[str, str]) -> pl.DataFrame:
    """A zero-row frame typed as documented by `{name: "type - meaning"}` (the text `column_schema` takes):
    what an asset stores while it has no data yet, so its readers find every column."""
    return pl.DataFrame(schema={name: _DTYPES.get(text.split(" - ", 1)[0].split()[0].lower(), pl.String)
                                for name, text in columns.items()})


def md_table(frame: pl.DataFrame, max_rows: int = 20, digits: int = 3) -> str:
    """A markdown table of the first `max_rows` rows (floats rounded) for metadata."""
    if frame.is_empty():
        return "_(no rows)_"
    shown = frame.head(max_rows).with_columns(pl.col(c).round(digits) for c in frame.columns
                                              if frame.schema[c] in _NUMERIC)
    header = "| " + " | ".join(shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = ["| " + " | ".join("" if v is None else md_escape(str(v)) for v in row) + " |" for row in shown.iter_rows()]
    more = [f"\n_{frame.height - max_rows:,} more rows_"] if frame.height > max_rows else []
    return "\n".join([header, rule, *rows, *more])
