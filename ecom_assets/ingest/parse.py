"""Pure functions: one drop file (its path or its bytes) -> typed rows, quarantined rows (with
reasons), duplicates.

Every row of a file ends in exactly one of three fates (the input contract in DESIGN.md):
clean (typed, kept), quarantined (with `reason`, `source_file`, `line`) or duplicate (the same
content as an earlier row of the same file). Problems with the whole file (not decodable as a
table, a required column missing, 0 bytes) raise `FileRejected` with a readable reason.

A file above HEAD_BYTES is parsed by polars from its path; a small one, or one that is not valid
UTF-8, from its bytes (decoded in Python, so the note can say where and how). Everything is read
as text first and cast with `strict=False`; a value that was present but did
not survive the cast is a quarantine reason, so one bad cell never fails a whole column.
"""

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from ecom_assets.schemas import UNKNOWN_PRODUCT, repeated


class FileRejected(ValueError):
    """The whole file cannot be ingested; the message says why (it goes into `.reason.txt`)."""


@dataclass(frozen=True)
class DropKind:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()  # at least one of these optional columns must be in the header

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


KINDS = {
    "customers": DropKind("customers", ("customer_id",), ("age", "gender", "location", "signup_date")),
    "sessions": DropKind(
        "sessions",
        ("session_id", "customer_id", "session_date", "purchase_made"),
        ("product_viewed", "browsing_time_sec", "purchase_amount", "added_to_cart"),
    ),
    "campaigns": DropKind("campaigns", ("campaign_id", "name", "start_date", "end_date"), ("channel",)),
}
# The seed format always has these columns; a sessions file without them is not a sessions export.
EXPECTED_IN_HEADER = {
    "customers": ("customer_id", "age", "gender", "location", "signup_date"),
    "sessions": ("session_id", "customer_id", "session_date", "product_viewed", "browsing_time_sec",
                 "purchase_made", "purchase_amount"),
    "campaigns": ("campaign_id", "name", "start_date", "end_date"),
}
DELIMITERS = (",", ";", "\t", "|")
FUTURE_TOLERANCE = timedelta(days=1)


@dataclass
class ParsedDrop:
    """The outcome for one file: kept rows, quarantined rows and the accounting."""

    kind: str
    source_file: str
    clean: pl.DataFrame
    quarantine: pl.DataFrame
    rows_in: int
    duplicates: int
    notes: list[str] = field(default_factory=list)

    @property
    def accounting(self) -> dict:
        return {
            "source_file": self.source_file,
            "kind": self.kind,
            "rows_in": self.rows_in,
            "clean": self.clean.height,
            "quarantined": self.quarantine.height,
            "duplicate": self.duplicates,
            "notes": self.notes,
        }


def decode(raw: bytes) -> tuple[bytes, list[str]]:
    """UTF-8 bytes for polars; a latin-1 export is decoded as latin-1 (every byte is valid) and said so."""
    if not raw.strip():
        raise FileRejected("empty file (0 bytes or only whitespace)")
    notes = []
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raw = raw.decode("latin-1").encode("utf-8")
        notes.append(f"not valid UTF-8 (byte {err.start}): decoded as latin-1")
    raw, bom = _without_bom(raw)
    return raw, notes + bom


def _without_bom(raw: bytes) -> tuple[bytes, list[str]]:
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:], ["UTF-8 byte-order mark removed"]
    return raw, []


def sniff_header(raw: bytes, kind: DropKind) -> tuple[str, list[str], list[str]]:
    """(delimiter, normalised header names, extra columns) — or FileRejected naming what is missing."""
    first = raw.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    delimiter = max(DELIMITERS, key=first.count)
    names = [c.strip().strip('"').strip().lower() for c in first.split(delimiter)]
    missing = [c for c in kind.required if c not in names]
    if missing:
        raise FileRejected(
            f"missing required column(s) {', '.join(missing)} in header line 1 "
            f"(found: {', '.join(names) or 'nothing'}; delimiter {delimiter!r})"
        )
    if kind.any_of and not set(kind.any_of) & set(names):
        raise FileRejected(f"the header needs one of {' or '.join(kind.any_of)} (found: {', '.join(names)})")
    if len(set(names)) != len(names):
        raise FileRejected(f"duplicate column names in header line 1: {', '.join(names)}")
    extra = [c for c in names if c not in kind.columns]
    return delimiter, names, extra


HEAD_BYTES = 1 << 16  # the bytes read for the header; a file this small is parsed from memory, a larger one from its path


def _read_csv(source: bytes | Path, delimiter: str, names: list[str]) -> pl.DataFrame:
    try:
        return pl.read_csv(source, separator=delimiter, infer_schema=False, has_header=True, new_columns=names,
                           truncate_ragged_lines=True)
    except pl.exceptions.PolarsError as err:
        raise FileRejected(f"not a readable {delimiter!r}-delimited table: {err}".splitlines()[0]) from err


def _read_path(path: Path, kind: DropKind) -> tuple[pl.DataFrame, str, list[str], list[str], bool] | None:
    """A large UTF-8 file parsed by polars from its path: no copy of its bytes in Python, and polars'
    own UTF-8 check instead of a Python decode (together ~1.8 s of a 600 MB file). None when the file
    is small or not valid UTF-8: then the bytes route below reads it (and says how it was decoded)."""
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
        size = handle.seek(0, 2)
        if size <= HEAD_BYTES or b"\n" not in head:
            return None
        handle.seek(size - 1)
        ends_with_newline = handle.read(1) == b"\n"
    head, notes = _without_bom(head)  # polars skips the byte-order mark itself; the note still says so
    try:
        delimiter, names, extra = sniff_header(head, kind)
    except UnicodeDecodeError:  # header not UTF-8: the bytes route decodes and reports it
        return None
    try:
        table = _read_csv(path, delimiter, names)
    except FileRejected as err:
        if "utf-8" in str(err).lower():  # polars names no position: the bytes route finds and reports it
            return None
        raise
    return table, delimiter, extra, notes, not ends_with_newline


def _read_bytes(raw: bytes, kind: DropKind) -> tuple[pl.DataFrame, str, list[str], list[str], bool]:
    raw, notes = decode(raw)
    delimiter, names, extra = sniff_header(raw, kind)
    return _read_csv(raw, delimiter, names), delimiter, extra, notes, not raw.endswith(b"\n")


def read_text_table(source: bytes | Path, kind: DropKind, source_file: str) -> tuple[pl.DataFrame, list[str]]:
    """All columns as text plus `line` (physical line number; the header is line 1)."""
    read = _read_path(source, kind) if isinstance(source, Path) else None
    table, delimiter, extra, notes, truncated = read or _read_bytes(
        source.read_bytes() if isinstance(source, Path) else source, kind)
    names = table.columns
    if extra:
        notes.append(f"extra column(s) ignored: {', '.join(extra)}")
    if delimiter != ",":
        notes.append(f"delimiter {delimiter!r}")
    padded = table.select(
        (pl.col(c).str.starts_with(" ") | pl.col(c).str.ends_with(" ")).any().alias(c) for c in table.columns if c in kind.columns
    ).row(0, named=True) if table.height else {}
    table = table.select(
        *[(pl.col(c).str.strip_chars() if padded.get(c) else pl.col(c)) if c in names else pl.lit(None, pl.String).alias(c)
          for c in kind.columns]
    ).with_row_index("line", offset=2).with_columns(pl.col("line").cast(pl.Int64))
    truncated = truncated and table.height > 0
    table = table.with_columns(
        _truncated=(pl.col("line") == table.height + 1) & pl.lit(truncated) & pl.any_horizontal(
            pl.col(c).is_null() for c in names if c in kind.columns),
        source_file=pl.lit(source_file),
    )
    if table.height == 0:
        notes.append("header only: 0 rows")
    return table, notes


def _bad(condition: pl.Expr, reason: str | pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """A rule: the rows it catches, and the reason text (built only for the rows caught)."""
    return condition, reason if isinstance(reason, pl.Expr) else pl.lit(reason)


def _flag(text: str) -> pl.Expr:
    """0/1 text -> bool; anything else -> null (caught by a rule). Two comparisons, not a lookup
    table: `replace_strict` hashes every value (0.7 s for two flags of 10M rows, this 0.05 s)."""
    value = pl.col(text)
    return pl.when(value == "1").then(True).when(value == "0").then(False).otherwise(None)


def _date(text: str) -> pl.Expr:
    return pl.col(text).str.to_date("%Y-%m-%d", strict=False)


# Placeholder until the ISO 8601 date-time parser of the real-exports work lands in this module.
_ZONED = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%dT%H:%M%z", "%Y-%m-%d %H:%M%z")
_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d")


def _instant(text: str) -> pl.Expr:
    """ISO 8601 date or date-time text -> UTC instant (naive values are taken as UTC); else null."""
    value = pl.col(text).str.replace(r" UTC$", "Z").str.replace(r"Z$", "+00:00")
    return pl.coalesce(
        *[value.str.to_datetime(f, strict=False, time_unit="us", time_zone="UTC") for f in _ZONED],
        *[value.str.to_datetime(f, strict=False, time_unit="us").dt.replace_time_zone("UTC") for f in _NAIVE])


def _future_instant(text: str, today: date) -> pl.Expr:
    return _instant(text).dt.date() > pl.lit(today + FUTURE_TOLERANCE)


def _number(text: str) -> pl.Expr:
    """Text -> finite float; anything else (text, nan, inf) -> null, so `_not_parsed` catches it."""
    value = pl.col(text).cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value)


def _not_parsed(text: str, typed: pl.Expr) -> pl.Expr:
    return pl.col(text).is_not_null() & (pl.col(text) != "") & typed.is_null()


def _empty(text: str) -> pl.Expr:
    return pl.col(text).is_null() | (pl.col(text) == "")


def _future(text: str, today: date) -> pl.Expr:
    return _date(text) > pl.lit(today + FUTURE_TOLERANCE)


def _value(text: str) -> pl.Expr:
    return pl.lit(f"{text} ") + pl.lit("'") + pl.col(text).str.slice(0, 30) + pl.lit("'")


def session_rules(today: date) -> list[tuple[pl.Expr, pl.Expr]]:
    amount = pl.col("purchase_amount").cast(pl.Float64, strict=False)
    browsing = pl.col("browsing_time_sec").cast(pl.Float64, strict=False)
    return [
        _bad(_empty("session_id"), "empty session_id"),
        _bad(_empty("customer_id"), "empty customer_id"),
        _bad(_empty("session_date"), "empty session_date"),
        _bad(_not_parsed("session_date", _date("session_date")), _value("session_date") + pl.lit(" is not an ISO date (YYYY-MM-DD)")),
        _bad(_future("session_date", today), _value("session_date") + pl.lit(f" is in the future (after {today + FUTURE_TOLERANCE})")),
        _bad(_flag("purchase_made").is_null(), _value("purchase_made").fill_null("purchase_made empty") + pl.lit(" must be 0 or 1")),
        _bad(_not_parsed("purchase_amount", amount), _value("purchase_amount") + pl.lit(" is not a number")),
        _bad(amount < 0, "negative purchase_amount"),
        _bad((amount > 0) & (_flag("purchase_made") == False), "purchase_amount > 0 with purchase_made=0"),  # noqa: E712
        _bad(_empty("purchase_amount") & (_flag("purchase_made") == True), "purchase_made=1 without purchase_amount"),  # noqa: E712
        _bad(_not_parsed("browsing_time_sec", browsing), _value("browsing_time_sec") + pl.lit(" is not a number")),
        _bad(browsing < 0, "negative browsing_time_sec"),
        _bad(~_empty("added_to_cart") & _flag("added_to_cart").is_null(), _value("added_to_cart") + pl.lit(" must be 0 or 1")),
    ]


def typed_sessions() -> list[pl.Expr]:
    product = pl.col("product_viewed")
    return [
        pl.col("session_id"),
        pl.col("customer_id"),
        _date("session_date").alias("session_date"),
        pl.when(_empty("product_viewed") | (product.str.to_lowercase() == "unknown"))
        .then(pl.lit(UNKNOWN_PRODUCT)).otherwise(product).alias("product_viewed"),
        pl.col("browsing_time_sec").cast(pl.Float64, strict=False),
        _flag("purchase_made").alias("purchase_made"),
        pl.col("purchase_amount").cast(pl.Float64, strict=False).fill_null(0.0),
        _flag("added_to_cart").alias("added_to_cart"),
    ]


def customer_rules(today: date) -> list[tuple[pl.Expr, pl.Expr]]:
    return [
        _bad(_empty("customer_id"), "empty customer_id"),
        _bad(_not_parsed("signup_date", _date("signup_date")), _value("signup_date") + pl.lit(" is not an ISO date (YYYY-MM-DD)")),
        _bad(_future("signup_date", today), _value("signup_date") + pl.lit(f" is in the future (after {today + FUTURE_TOLERANCE})")),
    ]


def typed_customers() -> list[pl.Expr]:
    age = pl.col("age").cast(pl.Float64, strict=False)
    in_range = age.is_between(10, 120) & (age == age.floor())
    return [
        pl.col("customer_id"),
        pl.when(in_range).then(age.cast(pl.Int64)).otherwise(None).alias("age"),
        (~_empty("age") & ~in_range.fill_null(False)).alias("age_out_of_range"),
        pl.when(_empty("gender")).then(None).otherwise(pl.col("gender")).alias("gender"),
        pl.when(_empty("location")).then(None).otherwise(pl.col("location")).alias("location"),
        _date("signup_date").alias("signup_date"),
    ]


def campaign_rules(today: date) -> list[tuple[pl.Expr, pl.Expr]]:
    return [
        _bad(_empty("campaign_id"), "empty campaign_id"),
        _bad(_empty("start_date") | _date("start_date").is_null(), "start_date missing or not an ISO date"),
        _bad(_empty("end_date") | _date("end_date").is_null(), "end_date missing or not an ISO date"),
        _bad(_date("end_date") < _date("start_date"), "end_date before start_date"),
    ]


def typed_campaigns() -> list[pl.Expr]:
    return [
        pl.col("campaign_id"), pl.col("name"), _date("start_date").alias("start_date"),
        _date("end_date").alias("end_date"), pl.col("channel"),
    ]


RULES = {"sessions": (session_rules, typed_sessions), "customers": (customer_rules, typed_customers),
         "campaigns": (campaign_rules, typed_campaigns)}


BATCH_ROWS = 2_000_000  # rows judged at a time: bounds the working set at 10M-row drops


def _judge(table: pl.DataFrame, kind: DropKind, rules: list, typed_values: list[pl.Expr]) -> pl.LazyFrame:
    """Text rows + `_rule<i>` flags, `_blank`, `_bad` and the typed values as `_typed_<name>`.

    One lazy projection, so the date and number parsing that rules and typed values share runs once."""
    return table.lazy().with_columns(
        _blank=pl.all_horizontal(_empty(c) for c in kind.columns),
        *[cond.fill_null(False).alias(f"_rule{i}") for i, (cond, _) in enumerate(rules)],
        *[expr.alias(f"_typed_{expr.meta.output_name()}") for expr in typed_values],
    ).with_columns(_bad=pl.col("_blank") | pl.any_horizontal(f"_rule{i}" for i in range(len(rules))))


def split_rows(table: pl.DataFrame, kind: DropKind, today: date,
               batch_rows: int = BATCH_ROWS) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """(typed clean rows, quarantined text rows with `reason`, number of in-file duplicates).

    Rules are evaluated as booleans over every row; reason texts are built only for the few rows
    that broke one. An exact duplicate repeats its row's id, so only rows whose id occurs twice are
    compared (on the full text: a hash collision can never drop a row). The rest is judged in
    batches of `batch_rows` so that a 10M-row drop never holds a second full copy of itself.
    """
    rule_list, typed = RULES[kind.name]
    rules = [(pl.col("_truncated"), pl.lit("truncated last line")), *rule_list(today)]
    typed_values = typed()
    typed_names = [expr.meta.output_name() for expr in typed_values]
    reason = pl.concat_str([pl.when(pl.col(f"_rule{i}")).then(msg) for i, (_, msg) in enumerate(rules)],
                           separator="; ", ignore_nulls=True)
    # duplicates: among good rows sharing an id, every copy of an already-seen text is one
    shared_id = repeated(table[kind.required[0]].hash(seed=0))
    candidates = _judge(table.filter(shared_id), kind, rules, typed_values).filter(~pl.col("_bad"))
    duplicate_lines = candidates.filter(~pl.struct(kind.columns).is_first_distinct()).collect()["line"]
    source_file = table["source_file"][0] if table.height else ""
    clean_parts, quarantine_parts = [], []
    for offset in range(0, max(table.height, 1), batch_rows):  # once at least: a header-only file gives empty frames
        # the rules are evaluated once; each half then filters only the columns it keeps
        judged = _judge(table.slice(offset, batch_rows), kind, rules, typed_values).collect().lazy()
        quarantined, clean = pl.collect_all([
            judged.filter(pl.col("_bad")).select(
                *kind.columns, "source_file", "line",
                reason=pl.when(pl.col("_blank")).then(pl.lit("blank line")).otherwise(reason)),
            judged.filter(~pl.col("_bad") & ~pl.col("line").is_in(duplicate_lines.implode())).select(
                *[pl.col(f"_typed_{name}").alias(name) for name in typed_names],
                pl.lit(source_file).alias("source_file"), "line"),
        ])
        quarantine_parts.append(quarantined)
        clean_parts.append(clean)
        del judged
    return pl.concat(clean_parts), pl.concat(quarantine_parts), duplicate_lines.len()


def parse_drop(raw: bytes | Path, kind_name: str, source_file: str, today: date | None = None) -> ParsedDrop:
    """One drop (its bytes, or its path: then polars parses the file itself) -> its three fates.
    Raises FileRejected for whole-file problems."""
    kind = KINDS[kind_name]
    table, notes = read_text_table(raw, kind, source_file)
    clean, quarantine, duplicates = split_rows(table, kind, today or date.today())
    return ParsedDrop(kind_name, source_file, clean, quarantine, table.height, duplicates, notes)
