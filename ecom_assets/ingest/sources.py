"""`$ECOM_DATA_DIR/sources.yaml`: what an export cannot tell us safely, declared per file-name glob.

The file is optional. It is a YAML list of entries (or a mapping with a `sources:` list); the first
entry whose glob matches a drop's file name (with or without a `.gz` ending; folders below
`landing/` are not part of the name) applies to it, case-insensitively. Every key is optional except the glob:

```yaml
- match: "online_retail*.csv"      # file-name glob, no folders (aliases: glob, pattern, files)
  kind: sessions                   # customers | sessions | orders | events | campaigns
  columns: {InvoiceNo: session_id, CustomerID: customer_id, InvoiceDate: session_date}
  date_format: "%m/%d/%Y %H:%M"    # chrono/strftime format of every date column, or epoch_s | epoch_ms | epoch_us
  timezone: Europe/London          # IANA zone of naive timestamps (default: read as UTC, noted)
  decimal: ","                     # "." or ","
  encoding: cp1252                 # any Python codec name
  null_markers: ["?", "#N/A"]      # on top of the built-in missing-value markers
  return_when: {column: order_id, prefix: "C"}   # orders only; or {column: status, values: [cancelled]}
  currency: EUR                    # orders, events: the shop's reporting currency (ISO 4217); order lines / purchase
                                   # events in another are quarantined
```

Public API: `load_sources(data_dir)` (raises `SourcesError` naming the entry and the problem),
`spec_for(name, specs)`, the `SourceSpec` / `ReturnRule` records. The file is read again on every
sensor tick and for every ingest run; changing it never re-ingests an earlier drop by itself.
"""

from __future__ import annotations

import codecs
import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl
import yaml

from ecom_assets.settings import currency_code

SOURCES_FILE = "sources.yaml"
SOURCE_KINDS = ("customers", "sessions", "orders", "events", "campaigns")
GLOB_KEYS = ("match", "glob", "pattern", "files")
SPEC_KEYS = ("kind", "columns", "date_format", "timezone", "decimal", "encoding", "null_markers", "return_when",
             "currency")
# integer seconds / milliseconds / microseconds since 1970-01-01 UTC (BigQuery's GA4 `event_timestamp`: epoch_us)
EPOCH_UNITS = {"epoch_s": "s", "epoch_ms": "ms", "epoch_us": "us"}
TIME_DIRECTIVES = ("%H", "%I", "%M", "%S", "%T", "%R", "%X", "%c", "%s", "%k", "%l")


class SourcesError(ValueError):
    """sources.yaml cannot be used; the message names the file, the entry and the problem."""


@dataclass(frozen=True)
class ReturnRule:
    """Which order lines are returns/cancellations: `column` starts with `prefix`, or equals one of
    `values` (case-insensitive). `column` is a contract column name (after `columns` renaming)."""

    column: str
    prefix: str | None = None
    values: tuple[str, ...] = ()

    def expr(self) -> pl.Expr:
        """Boolean polars expression over the text column: True for a return line, null when missing."""
        text = pl.col(self.column)
        if self.prefix is not None:
            return text.str.starts_with(self.prefix)
        return text.str.to_lowercase().is_in([v.lower() for v in self.values])


@dataclass(frozen=True)
class SourceSpec:
    """One entry of sources.yaml. `columns` maps lower-cased export header names to contract names."""

    match: str
    kind: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    date_format: str | None = None
    timezone: str | None = None
    decimal: str | None = None
    encoding: str | None = None
    null_markers: tuple[str, ...] = ()
    return_when: ReturnRule | None = None
    currency: str | None = None  # the reporting currency of an orders or events export (upper-case ISO 4217 code)

    def matches(self, name: str) -> bool:
        """`name`: the file's name (a path's folders are ignored); compared case-insensitively."""
        target = name.lower().replace("\\", "/").rsplit("/", 1)[-1]
        # `exports_*.csv` also covers the same export compressed (`exports_1.csv.gz`)
        return any(fnmatch.fnmatchcase(t, self.match.lower()) for t in (target, target.removesuffix(".gz")))

    @property
    def date_has_time(self) -> bool:
        return self.date_format is not None and (self.date_format in EPOCH_UNITS
                                                 or any(d in self.date_format for d in TIME_DIRECTIVES))

    def describe(self) -> str:
        """Short text for partition metadata: which entry applied and what it declared."""
        declared = [f"{k}={getattr(self, k)!r}" for k in SPEC_KEYS if getattr(self, k) not in (None, {}, ())]
        return f"sources.yaml entry {self.match!r}" + (f" ({', '.join(declared)})" if declared else "")


def spec_for(name: str, specs: Sequence[SourceSpec]) -> SourceSpec | None:
    """The first entry whose glob matches the file name `name` (a path's folders are ignored), else None."""
    return next((spec for spec in specs if spec.matches(name)), None)


def load_sources(data_dir: str | Path) -> list[SourceSpec]:
    """The entries of `data_dir/sources.yaml` in file order; [] when the file does not exist.

    Raises SourcesError for unreadable YAML, an unknown key (a typo such as `date_fromat` would
    otherwise be silently ignored), or a value that cannot be used (unknown kind, time zone,
    encoding, decimal mark, or a date_format that does not give a full date)."""
    path = Path(data_dir) / SOURCES_FILE
    if not path.exists():
        return []
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise SourcesError(f"{path}: not readable YAML: {' '.join(str(err).split())}") from err
    if isinstance(document, dict) and set(document) == {"sources"}:
        document = document["sources"]
    if document is None:
        return []
    if not isinstance(document, list):
        raise SourcesError(f"{path}: expected a list of entries (each with `match: <file-name glob>`), "
                           f"found {type(document).__name__}")
    return [_entry(path, i, raw) for i, raw in enumerate(document, start=1)]


def _entry(path: Path, number: int, raw) -> SourceSpec:
    where = f"{path} entry {number}"
    if not isinstance(raw, dict):
        raise SourcesError(f"{where}: expected a mapping with `match: <file-name glob>`, found {raw!r}")
    globs = [k for k in GLOB_KEYS if k in raw]
    if len(globs) != 1 or not isinstance(raw[globs[0]], str) or not raw[globs[0]].strip():
        raise SourcesError(f"{where}: needs exactly one file-name glob under `match` (found {globs or 'none'})")
    if "/" in raw[globs[0]] or "\\" in raw[globs[0]]:
        raise SourcesError(f"{where}: `match` is a file-name glob ({raw[globs[0]]!r} names a folder; files in "
                           "sub-folders of landing/ are matched by their name)")
    unknown = sorted(set(raw) - set(GLOB_KEYS) - set(SPEC_KEYS))
    if unknown:
        raise SourcesError(f"{where}: unknown key(s) {', '.join(map(str, unknown))} "
                           f"(allowed: match, {', '.join(SPEC_KEYS)})")
    where = f"{where} ({raw[globs[0]]!r})"
    try:
        kind = _kind(raw.get("kind"))
        return SourceSpec(
            match=raw[globs[0]].strip(),
            kind=kind,
            columns=_columns(raw.get("columns")),
            date_format=_date_format(raw.get("date_format")),
            timezone=_timezone(raw.get("timezone")),
            decimal=_decimal(raw.get("decimal")),
            encoding=_encoding(raw.get("encoding")),
            null_markers=_markers(raw.get("null_markers")),
            return_when=_return_rule(raw.get("return_when"), kind),
            currency=_currency(raw.get("currency"), kind),
        )
    except SourcesError as err:
        raise SourcesError(f"{where}: {err}") from None


def _text(value, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SourcesError(f"`{key}` must be a non-empty text, found {value!r}")
    return value.strip()


def _kind(value) -> str | None:
    kind = _text(value, "kind")
    if kind is not None and kind.lower() not in SOURCE_KINDS:
        raise SourcesError(f"kind {kind!r} is not one of {', '.join(SOURCE_KINDS)}")
    return kind.lower() if kind else None


def _columns(value) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise SourcesError(f"`columns` must map export header names to contract names, found {value!r}")
    renamed = {k.strip().lower(): v.strip().lower() for k, v in value.items()}
    targets = list(renamed.values())
    if len(set(targets)) != len(targets):
        raise SourcesError(f"`columns` maps two export columns to the same name: {value!r}")
    return renamed


def _date_format(value) -> str | None:
    fmt = _text(value, "date_format")
    if fmt is None or fmt in EPOCH_UNITS:
        return fmt
    if "%z" in fmt or "%Z" in fmt or "%:z" in fmt:
        raise SourcesError(f"date_format {fmt!r}: offsets are read from ISO 8601 values without a declaration; "
                           "declare non-ISO formats without %z and give the zone under `timezone`")
    # a full date must survive a round trip through the format, or the format cannot be used
    sample = datetime(2023, 5, 17, 14, 3, 9)
    try:
        text = sample.strftime(fmt)
        parsed = pl.Series([text]).str.to_datetime(fmt, strict=True) if any(d in fmt for d in TIME_DIRECTIVES) \
            else pl.Series([text]).str.to_date(fmt, strict=True)
    except (ValueError, pl.exceptions.PolarsError) as err:
        raise SourcesError(f"date_format {fmt!r} cannot be used to read dates ({str(err).splitlines()[0]})") from None
    if parsed.dt.date()[0] != sample.date():
        raise SourcesError(f"date_format {fmt!r} does not give a full date (day, month and year)")
    return fmt


def _timezone(value) -> str | None:
    zone = _text(value, "timezone")
    if zone is None:
        return None
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SourcesError(f"timezone {zone!r} is not an IANA time zone name (e.g. Europe/London, UTC)") from None
    return zone


def _decimal(value) -> str | None:
    mark = None if value is None else str(value).strip()
    if mark not in (None, ".", ","):
        raise SourcesError(f"decimal must be \".\" or \",\", found {value!r}")
    return mark


def _encoding(value) -> str | None:
    name = _text(value, "encoding")
    if name is None:
        return None
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise SourcesError(f"encoding {name!r} is not a known encoding (e.g. utf-8, utf-16, cp1252)") from None


def _markers(value) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in items):
        raise SourcesError(f"null_markers must be a list of texts (quote YAML words like null, yes), found {value!r}")
    return tuple(str(v) for v in items)


def _return_rule(value, kind: str | None) -> ReturnRule | None:
    if value is None:
        return None
    if kind not in (None, "orders"):
        raise SourcesError(f"return_when applies to orders exports, not {kind}")
    if not isinstance(value, dict) or not isinstance(value.get("column"), str) or \
            len({"prefix", "values"} & set(value)) != 1 or set(value) - {"column", "prefix", "values"}:
        raise SourcesError("return_when must be {column: <name>, prefix: <text>} or "
                           f"{{column: <name>, values: [<text>, ...]}}, found {value!r}")
    column = value["column"].strip().lower()
    if "prefix" in value:
        return ReturnRule(column, prefix=_text(value["prefix"], "return_when.prefix"))
    values = value["values"] if isinstance(value["values"], list) else [value["values"]]
    return ReturnRule(column, values=tuple(str(v) for v in values))


def _currency(value, kind: str | None) -> str | None:
    code = _text(value, "currency")
    if code is None:
        return None
    if kind not in (None, "orders", "events"):
        raise SourcesError(f"currency applies to orders and events exports, not {kind}")
    try:
        return currency_code(code)
    except ValueError:
        raise SourcesError(f"currency must be a three-letter ISO 4217 code such as EUR or USD, found {value!r}") \
            from None
