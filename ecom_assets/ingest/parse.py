"""Pure functions: one drop file (its path or its bytes) -> typed rows, quarantined rows (with
reasons), duplicates.

Every row of a file ends in exactly one of three fates (the input contract in DESIGN.md):
clean (typed, kept), quarantined (with `reason`, `source_file`, `line`) or duplicate (the same
content as an earlier row of the same file). Problems with the whole file (not decodable as a
table, a required column missing, 0 bytes) raise `FileRejected` with a readable reason.

A file above HEAD_BYTES is parsed by polars from its path; a small one, one that is not valid
UTF-8 or compressed, from its bytes (decoded in Python, so the note can say where and how). Polars
reads a file only when it is provably regular (one record per physical line, the header's field
count); any other file is read by Python's csv module, which gives every record's field count and
physical start line. Everything is read as text first; values are then read by the shared rules
of `values.py` with the file's `sources.yaml` entry, and a value that was present but could not be
read is a quarantine reason, so one bad cell never fails a whole column.
"""

import codecs
import csv
import dataclasses
import gzip
import hashlib
import io
import mmap
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from ecom_assets.ingest.sources import SourceSpec
from ecom_assets.ingest.values import (C1_CONTROL, EARLIEST_YEAR, FORMULA_RULE, date_hint, early_year_reason, flag_expr,
                                       formula_cells, infer_decimal, null_markers, number_expr, number_hint,
                                       infer_date_format, read_timestamps, suggest_date_format, value_last)
from ecom_assets.schemas import UNKNOWN_PRODUCT, CleanCustomers, CleanSessions, RowCheck, repeated, row_checks


class FileRejected(ValueError):
    """The whole file cannot be ingested; the message says why (it goes into `.reason.txt`)."""


@dataclass(frozen=True)
class DropKind:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    dates: tuple[str, ...] = ()  # read by values.read_timestamps
    numbers: tuple[str, ...] = ()  # values.number_expr
    flags: tuple[str, ...] = ()  # values.flag_expr
    texts: tuple[str, ...] = ()  # kept as text: checked for C1 control characters
    any_of: tuple[str, ...] = ()  # at least one of these optional columns must be in the header
    keyed: bool = True  # the first required column identifies a row (a line-level kind repeats it: False)
    # lines of one record (an order's line items) share `record_fields`; an export may write them on one line
    # of the record only (Shopify: on the first line item), see `fill_record_fields`
    record_key: str = ""
    record_fields: tuple[str, ...] = ()
    # a kind that is not `keyed`: the columns whose values repeating make a row a candidate duplicate (then
    # compared on every column); empty: all columns
    candidate_key: tuple[str, ...] = ()
    # a file may lack the `record_key` column (a purchase log): each row is then one record, keyed by its content
    # (`content_key`), so a re-export of the same row gets the same key
    key_from_content: bool = False
    # non-empty: a record is kept whole or not at all — a quarantined line quarantines its record's other lines
    # (`quarantine_whole_records`); the text says why in their reason (an order read in part counts smaller)
    whole_records: str = ""
    # columns read as a category (`no_category`): which values are spelled as "none" is worked out once per
    # distinct value in `prepare` (`Reading.no_category`), not by lower-casing every row
    categories: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return self.required + self.optional


KINDS = {
    "customers": DropKind("customers", ("customer_id",), ("age", "gender", "location", "signup_date"),
                          dates=("signup_date",), numbers=("age",), texts=("customer_id", "gender", "location")),
    "sessions": DropKind(
        "sessions",
        ("session_id", "customer_id", "session_date", "purchase_made"),
        ("product_viewed", "browsing_time_sec", "purchase_amount", "added_to_cart"),
        dates=("session_date",), numbers=("purchase_amount", "browsing_time_sec"),
        flags=("purchase_made", "added_to_cart"), texts=("session_id", "customer_id", "product_viewed"),
        categories=("product_viewed",),
    ),
    "campaigns": DropKind("campaigns", ("campaign_id", "name", "start_date", "end_date"), ("channel",),
                          dates=("start_date", "end_date"), texts=("campaign_id", "name", "channel")),
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
    encoding: str = "utf-8"

    @property
    def accounting(self) -> dict:
        return {
            "source_file": self.source_file,
            "kind": self.kind,
            "rows_in": self.rows_in,
            "clean": self.clean.height,
            "quarantined": self.quarantine.height,
            "duplicate": self.duplicates,
            "encoding": self.encoding,
            "notes": self.notes,
        }


codecs.register_error(
    "ecom_c1",  # Windows-1252 leaves 5 bytes undefined: keep them visible (as C1) so their rows are quarantined
    lambda err: ("".join(chr(b) for b in err.object[err.start:err.end]), err.end))


def decode(raw: bytes, encoding: str | None = None) -> tuple[bytes, str, list[str]]:
    """(UTF-8 bytes without a byte-order mark, the encoding read, notes).

    A byte-order mark decides (UTF-8, UTF-16 LE/BE: Excel's "Unicode Text"); else the declared
    `encoding` (sources.yaml); else UTF-8 if the bytes are valid UTF-8, else Windows-1252 — the
    single-byte encoding Excel writes, where 0x80-0x9F are smart quotes and dashes (latin-1 would
    turn them into C1 control characters)."""
    if not raw.strip(b" \t\r\n\x00"):
        raise FileRejected("empty file (0 bytes or only whitespace)")
    for bom, codec, label in BOMS:
        if raw.startswith(bom):
            if codec == "utf-8":
                return _decoded(raw[len(bom):], "utf-8", "utf-8 (byte-order mark)", ["UTF-8 byte-order mark removed"])
            return _decoded(raw[len(bom):], codec, label, [f"encoding {label} (byte-order mark)"])
    if encoding is not None and encoding != "utf-8":
        return _decoded(raw, encoding, encoding, [f"encoding {encoding} (declared in sources.yaml)"])
    try:
        raw.decode("utf-8")
        return raw, "utf-8", []
    except UnicodeDecodeError as err:
        if encoding == "utf-8":
            raise FileRejected(f"not valid UTF-8 as declared in sources.yaml (byte {err.start})") from err
        text = raw.decode("cp1252", errors="ecom_c1")
        return text.encode("utf-8"), "cp1252", [f"not valid UTF-8 (byte {err.start}): decoded as Windows-1252"]


BOMS = ((b"\xef\xbb\xbf", "utf-8", "utf-8"), (b"\xff\xfe", "utf-16-le", "utf-16-le"), (b"\xfe\xff", "utf-16-be", "utf-16-be"))


def _decoded(raw: bytes, codec: str, label: str, notes: list[str]) -> tuple[bytes, str, list[str]]:
    try:
        return raw.decode(codec).encode("utf-8"), label, notes
    except UnicodeDecodeError as err:
        raise FileRejected(f"not decodable as {label} (byte {err.start})") from err


def header_names(first: str, kind: DropKind, spec: SourceSpec | None) -> tuple[str, list[str]]:
    """(delimiter, header names): lower-cased, renamed by the spec's `columns`; empty cells -> ''."""
    delimiter = max(DELIMITERS, key=first.count)
    names = [c.strip().strip('"').strip().lower() for c in first.split(delimiter)]
    renames = spec.columns if spec else {}
    return delimiter, [renames.get(n, n) for n in names]


CONTENT_KEY_PREFIX = "row-"  # a key derived from a row's content (`content_key`)


def content_key(columns: list[str]) -> pl.Expr:
    """`row-` + 16 hex digits of BLAKE2b over the row's text in `columns` (trimmed; missing as empty), so the
    same row in an overlapping re-export gets the same key, never its line number. The k-th repeat (k >= 1) of
    an identical row in the same file hashes its text with k appended: a purchase log's record is a purchase
    (CDNOW: "each record is a transaction"), so two identical purchases on one day are two orders, and the k-th
    copy in a re-export still gets the k-th copy's key. hashlib, not polars' hash: polars does not promise the
    same hash across versions, and a key is stored."""
    text = pl.concat_str([pl.col(c).fill_null("") for c in columns], separator="\x1f")
    repeat = pl.int_range(pl.len()).over(text)
    text = pl.when(repeat == 0).then(text).otherwise(pl.concat_str([text, repeat.cast(pl.String)], separator="\x1e"))
    return text.map_batches(lambda values: pl.Series([
        CONTENT_KEY_PREFIX + hashlib.blake2b(v.encode(), digest_size=8).hexdigest() for v in values], dtype=pl.String),
        return_dtype=pl.String)


def sniff_header(raw: bytes, kind: DropKind, spec: SourceSpec | None = None) -> tuple[str, list[str], list[str]]:
    """(delimiter, header names with unnamed cells as `_unnamed_<i>`, notes) — or FileRejected
    naming what is missing. `raw` is UTF-8 (see `decode`)."""
    first = raw.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    delimiter, names = header_names(first, kind, spec)
    derived = kind.key_from_content and kind.record_key not in names
    missing = [c for c in kind.required if c not in names and not (derived and c == kind.record_key)]
    if missing:
        renamed = f"; after renaming by {spec.describe()}" if spec and spec.columns else ""
        raise FileRejected(
            f"missing required column(s) {', '.join(missing)} in header line 1 "
            f"(found: {', '.join(n for n in names if n) or 'nothing'}; delimiter {delimiter!r}{renamed})"
        )
    if kind.any_of and not set(kind.any_of) & set(names):
        raise FileRejected(f"the header needs one of {' or '.join(kind.any_of)} (found: {', '.join(n for n in names if n)})")
    named = [n for n in names if n]
    if len(set(named)) != len(named):
        raise FileRejected(f"duplicate column names in header line 1: {', '.join(named)}")
    notes = [f"no {kind.record_key} column: every row is one {kind.record_key.removesuffix('_id')}, its "
             f"{kind.record_key} derived from the row's content ({CONTENT_KEY_PREFIX}…; the same row re-exported "
             "gets the same id; a row repeated in this file is a purchase of its own)"] if derived else []
    extra = [c for c in named if c not in kind.columns]
    if extra:
        notes.append(f"extra column(s) ignored: {', '.join(extra)}")
    if len(named) < len(names):
        notes.append(f"{len(names) - len(named)} unnamed column(s) (empty header cells) ignored")
    return delimiter, [n or f"{UNNAMED}{i}" for i, n in enumerate(names, start=1)], notes


HEAD_BYTES = 1 << 16  # the bytes read for the header; a file this small is parsed from memory, a larger one from its path


def check_header(path: Path, kind_name: str, spec: SourceSpec | None = None) -> None:
    """The sensor's cheap whole-file check: the first HEAD_BYTES decode and hold a usable header
    (FileRejected otherwise). `.gz` files are checked on their decompressed start."""
    try:
        with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as handle:
            head = handle.read(HEAD_BYTES)
    except (OSError, EOFError) as err:
        raise FileRejected(f"not a readable gzip file: {err}") from err
    wide = next((codec for bom, codec, _ in BOMS[1:] if head.startswith(bom)), None)
    declared = spec.encoding if spec and spec.encoding not in (None, "utf-8") else None
    if wide or declared:  # a multi-byte head may end mid-character: decode what is whole
        head = head.removeprefix(b"\xff\xfe").removeprefix(b"\xfe\xff") if wide else head
        text = head.decode(wide or declared, errors="ignore").lstrip("\ufeff")
        if not text.strip():
            raise FileRejected("empty file (0 bytes or only whitespace)")
        raw = text.encode("utf-8")
    else:
        raw, _, _ = decode(head.split(b"\n", 1)[0] + b"\n", spec.encoding if spec else None)
    sniff_header(raw, KINDS[kind_name], spec)


@dataclass
class TextTable:
    """A drop read as text: the header's columns (missing values null), `line` and `_fields`."""

    table: pl.DataFrame
    width: int  # fields in the header, unnamed ones included
    named_width: int  # fields up to the last named header cell: a record may omit the unnamed ones after it
    delimiter: str
    encoding: str
    notes: list[str]
    ends_with_newline: bool
    may_hold_c1: bool  # the UTF-8 text has a 0xC2 byte (C1 controls are 0xC2 0x80-0x9F)


UNNAMED = "_unnamed_"  # prefix of empty header cells (Excel's trailing `,,`)


def _named_width(names: list[str]) -> int:
    return 1 + max((i for i, n in enumerate(names) if not n.startswith(UNNAMED)), default=-1)


def _regular(source: bytes | Path, delimiter: str, names: list[str], physical_lines: int) -> pl.DataFrame | None:
    """The records of a regular file — each on one physical line with the header's field count —
    parsed by polars (multi-threaded, from the path without a Python copy), else None.

    Regular is proven cheaply: polars reads with the header's width and fails on a record with more
    fields (an extra field, even an empty one: `a,b,c,` — a spare column would read it exactly like an
    absent field, which let such rows through in files read this way), the last named column has no
    missing value (a shorter record would leave it missing), and there is one record per physical line
    (no quoted line break). Anything else goes through `_records`, which reads every record's field
    count and start line."""
    try:
        table = pl.read_csv(source, separator=delimiter, has_header=False, skip_lines=1, infer_schema=False,
                            schema={n: pl.String for n in names}, missing_columns="insert",
                            truncate_ragged_lines=False)
    except pl.exceptions.PolarsError as err:
        if "utf-8" in str(err).lower():
            raise UnicodeError(str(err)) from err
        return None  # e.g. "found more fields than defined in 'Schema'"
    last_named = names[_named_width(names) - 1]
    if table[last_named].has_nulls() or table.height != physical_lines - 1 or _last_line_wider(source, delimiter, names):
        return None
    return table


def _last_line_wider(source: bytes | Path, delimiter: str, names: list[str]) -> bool:
    """Whether a last line without a line break has more fields than the header: polars 2.1 reads
    `a,b,c,` there as 3 fields without complaint (it fails on such a line everywhere else). True
    also when the last line is too long to look at here: the caller then reads every record."""
    if isinstance(source, Path):
        with source.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - HEAD_BYTES))
            tail = handle.read()
    else:
        tail = source[-HEAD_BYTES:]
    if tail.endswith(b"\n"):
        return False
    if b"\n" not in tail:
        return len(tail) == HEAD_BYTES
    last = tail.rsplit(b"\n", 1)[1].decode("utf-8", errors="replace")
    return len(next(csv.reader([last], delimiter=delimiter), [])) > len(names)


def _records(text: str, delimiter: str, names: list[str]) -> pl.DataFrame:
    """Every record with its physical start line and field count (Python's csv module: exact for
    quoted line breaks and ragged rows). Fields past the header's are dropped (the count says so)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    width = len(names)
    columns: list[list] = [[] for _ in range(width)]
    lines, fields = [], []
    previous = 0
    try:
        for number, record in enumerate(reader):
            start, previous = previous + 1, reader.line_num
            if number == 0:
                continue  # the header
            lines.append(start)
            fields.append(len(record) if record else width)  # a blank line is judged as blank, not as short
            for i in range(width):
                value = record[i] if i < len(record) else None
                columns[i].append(value or None)  # empty is missing, as polars reads it
    except csv.Error as err:  # e.g. a field over csv.field_size_limit(): an unterminated quote swallowing the file
        raise FileRejected(f"not a readable {delimiter!r}-delimited table at line {previous + 1}: {err}") from err
    return pl.DataFrame({**dict(zip(names, columns)), "line": lines, "_fields": fields},
                        schema={**{n: pl.String for n in names}, "line": pl.Int64, "_fields": pl.Int32})


def _physical_lines(path: Path) -> int:
    """Lines of the file as polars' reader counts them without quoting (one SIMD pass)."""
    return pl.scan_csv(path, has_header=False, quote_char=None, separator="\x1f", infer_schema=False) \
        .select(pl.len()).collect().item()


def _read_path(path: Path, kind: DropKind, spec: SourceSpec | None) -> TextTable | None:
    """A large, plain UTF-8 file parsed by polars from its path: no copy of its bytes in Python and
    polars' own UTF-8 check instead of a Python decode (together ~1.8 s of a 600 MB file). None
    when the file is small, compressed, not UTF-8 or not regular: the bytes route reads it."""
    if path.name.lower().endswith(".gz") or (spec and spec.encoding not in (None, "utf-8")):
        return None
    with path.open("rb") as handle:
        head = handle.read(HEAD_BYTES)
        size = handle.seek(0, 2)
        if size <= HEAD_BYTES or b"\n" not in head or head.startswith((b"\xff\xfe", b"\xfe\xff")):
            return None
        handle.seek(size - 1)
        ends_with_newline = handle.read(1) == b"\n"
        with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            may_hold_c1 = mapped.find(b"\xc2") >= 0  # memchr over the page cache: ~0.05 s for 600 MB
    notes = ["UTF-8 byte-order mark removed"] if head.startswith(BOMS[0][0]) else []
    try:
        delimiter, names, header_notes = sniff_header(head.removeprefix(BOMS[0][0]), kind, spec)
        table = _regular(path, delimiter, names, _physical_lines(path))
    except UnicodeError:  # not UTF-8: the bytes route decodes it and says where
        return None
    if table is None:
        return None
    table = table.with_row_index("line", offset=2).with_columns(pl.col("line").cast(pl.Int64))
    return TextTable(table, len(names), _named_width(names), delimiter, "utf-8 (byte-order mark)" if notes else "utf-8",
                     notes + header_notes, ends_with_newline, may_hold_c1)


def _read_bytes(raw: bytes, kind: DropKind, spec: SourceSpec | None, name: str) -> TextTable:
    if name.lower().endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise FileRejected(f"not a readable gzip file: {err}") from err
    raw, encoding, notes = decode(raw, spec.encoding if spec else None)
    delimiter, names, header_notes = sniff_header(raw, kind, spec)
    lines = raw.count(b"\n") + (0 if raw.endswith(b"\n") else 1)
    table = _regular(raw, delimiter, names, lines)
    if table is None:
        table = _records(raw.decode("utf-8"), delimiter, names)
    else:
        table = table.with_row_index("line", offset=2).with_columns(pl.col("line").cast(pl.Int64))
    return TextTable(table, len(names), _named_width(names), delimiter, encoding, notes + header_notes,
                     raw.endswith(b"\n"),
                     raw.find(b"\xc2") >= 0)


def read_text_table(source: bytes | Path, kind: DropKind, source_file: str,
                    spec: SourceSpec | None = None) -> TextTable:
    """The drop as text: `.table` has every contract column plus `line` (physical line where the
    record starts; header = line 1), `_ragged` (reason when the field count differs from the
    header's), `_truncated` and `source_file`; `.notes`, `.encoding`, `.delimiter` say how it was read."""
    markers = null_markers(spec)
    read = _read_path(source, kind, spec) if isinstance(source, Path) else None
    if read is None:
        name = source.name if isinstance(source, Path) else source_file.rsplit("__", 1)[0]
        read = _read_bytes(source.read_bytes() if isinstance(source, Path) else source, kind, spec, name)
    table, notes, width, named = read.table, read.notes, read.width, read.named_width
    if read.delimiter != ",":
        notes.append(f"delimiter {read.delimiter!r}")
    names = [c for c in table.columns if c in kind.columns]
    text = {c: pl.col(c) for c in names}
    if table.height:
        # one pass per column: padding, and whether any value is as short as a marker (lengths only); then
        # missing-value markers (`is_in` over every value: filtering first to values as short as a marker
        # cost more than it saved) only in those columns: ids, times and names are longer than every marker
        # (10M events: 5 of 8 columns skipped, ~0.35 s CPU); polars' reader option cost twice this
        longest = max(len(m.encode()) for m in markers)
        found = table.select(
            *[(pl.col(c).str.starts_with(" ") | pl.col(c).str.ends_with(" ")).any().alias(f"pad {c}") for c in names],
            *[(pl.col(c).str.len_bytes() <= longest).any().alias(f"short {c}") for c in names],
        ).row(0, named=True)
        short = [c for c in names if found[f"short {c}"]]
        found |= {f"nul {c}": False for c in names} | (
            table.select(pl.col(c).is_in(markers).any().alias(f"nul {c}") for c in short).row(0, named=True)
            if short else {})
        text = {c: value.str.strip_chars() if found[f"pad {c}"] else value for c, value in text.items()}
        padded = [c for c in names if found[f"pad {c}"]]
        if padded:  # " NULL " is a marker too once stripped
            found |= table.select(text[c].is_in(markers).any().alias(f"nul {c}") for c in padded).row(0, named=True)
        # the marker as written is kept beside (only in columns holding one) for the quarantine and its reason
        written = {c: pl.when(value.is_in(markers)).then(pl.col(c)).alias(f"{MARKER}{c}")
                   for c, value in text.items() if found[f"nul {c}"]}
        text = {c: pl.when(value.is_in(markers)).then(None).otherwise(value) if found[f"nul {c}"] else value
                for c, value in text.items()}
    else:
        written = {}
    truncated = not read.ends_with_newline and table.height > 0
    table = table.select(
        *[text[c].alias(c) if c in names else pl.lit(None, pl.String).alias(c) for c in kind.columns],
        *written.values(),
        "line",
        # only the csv-module route counts fields; a regular file has the header's count everywhere
        # a record may end before the header's trailing unnamed cells (nothing shifts), not before a named one
        _ragged=pl.when((pl.col("_fields") > width) | (pl.col("_fields") < named))
        .then(pl.format("field count differs from the header ({} fields): {}", pl.lit(width), "_fields"))
        if "_fields" in table.columns else pl.lit(None, pl.String),
        # only a file without a final newline can end in a truncated line (else skip the 10M-row pass)
        _truncated=(pl.int_range(pl.len()) == pl.len() - 1) & (
            (pl.col("_fields") < named if "_fields" in table.columns else pl.lit(False))
            | pl.any_horizontal(pl.col(c).is_null() for c in names)) if truncated else pl.lit(False),
        source_file=pl.lit(source_file),
    )
    if kind.key_from_content and kind.record_key not in names:
        table = table.with_columns(content_key(names).alias(kind.record_key))
        repeats = table.height - table.select(pl.struct(names).n_unique()).item() if table.height else 0
        if repeats:
            notes.append(f"{repeats:,} row(s) repeat an earlier row of this file exactly: each kept as an "
                         f"{kind.record_key.removesuffix('_id')} of its own (a log without ids cannot tell a second "
                         "identical purchase from a double-logged row; remove double-logged rows before dropping)")
    if table.height == 0:
        notes.append("header only: 0 rows")
    read.table = table
    return read


MARKER = "_marker_"  # `_marker_<column>`: a missing-value marker as written (NaN, NULL, N/A ...), else null


def _as_written(table: pl.DataFrame, columns: tuple[str, ...], reason: pl.Expr) -> tuple[list[pl.Expr], pl.Expr]:
    """Quarantine columns with each missing-value marker restored as written, and the reason naming
    the marker of every column the reason mentions ("purchase_made=1 without purchase_amount;
    purchase_amount is a missing-value marker, read as missing: 'NaN'")."""
    marked = [c for c in columns if f"{MARKER}{c}" in table.columns]
    notes = [pl.when(pl.col(f"{MARKER}{c}").is_not_null() & reason.str.contains(c, literal=True))
             .then(value_last(f"{c} is a missing-value marker, read as missing", f"{MARKER}{c}")) for c in marked]
    return ([pl.coalesce(f"{MARKER}{c}", c).alias(c) if c in marked else pl.col(c) for c in columns],
            pl.concat_str([reason, *notes], separator="; ", ignore_nulls=True) if notes else reason)


def _bad(condition: pl.Expr, reason: str | pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """A rule: the rows it catches, and the reason text (built only for the rows caught)."""
    return condition, reason if isinstance(reason, pl.Expr) else pl.lit(reason)


@dataclass(frozen=True)
class Reading:
    """How one file's values are read, decided once per file from its declaration and its text."""

    today: date
    spec: SourceSpec | None = None
    decimal: dict[str, str] = field(default_factory=dict)  # number column -> "." or ","
    words: frozenset[str] = frozenset()  # flag columns holding true/false/yes/no (not only 0/1)
    suspect_text: tuple[str, ...] = ()  # text columns that may hold C1 control characters
    currency: str | None = None  # the file's reporting currency (see `reporting_currency`)
    currency_rule: str = ""  # why a line in another currency is quarantined; "" when the file holds one currency
    early_years: frozenset[str] = frozenset()  # date columns with values read with a year before EARLIEST_YEAR
    grouped: frozenset[str] = frozenset()  # decimal-point number columns holding a comma
    formulas: tuple[str, ...] = ()  # text columns holding spreadsheet formulas other than a readable hyperlink
    # category column -> its distinct values written that `no_category` reads as no category (besides empty)
    no_category_values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    mixed_case_emails: bool = False  # customer ids include e-mail addresses with capitals (`customer_key`)
    inferred_dates: dict[str, str] = field(default_factory=dict)  # date column -> format its values prove
    decimal_ids: bool = False  # every customer id is an integer written `17850.0` (`integer_ids_as_decimals`)

    def customer(self, column: str = "customer_id") -> pl.Expr:
        """The ids without their zero decimal part where every id is an integer written so (`17850.0`:
        `integer_ids_as_decimals`); `customer_key(column)` where the file has e-mail ids with capitals (the
        lower-casing pass costs ~0.9 s per 10M rows); else the ids as written."""
        if self.decimal_ids:
            return pl.col(column).str.replace(r"\.0+$", "").alias(column)
        return customer_key(column) if self.mixed_case_emails else pl.col(column)

    def number(self, column: str) -> pl.Expr:
        return number_expr(column, self.decimal.get(column, "."), column in self.grouped)

    def no_category(self, column: str) -> pl.Expr:
        """`no_category(column)` per row, from the values `prepare` found spelled as none: the same rows,
        without stripping and lower-casing every value (10M events: ~0.8 -> ~0.15 s CPU)."""
        if column not in self.no_category_values:  # not prepared (a column the kind does not list)
            return no_category(column)
        spelled = self.no_category_values[column]
        return _empty(column) | pl.col(column).is_in(list(spelled)) if spelled else _empty(column)

    def flag(self, column: str) -> pl.Expr:
        return flag_expr(column, column in self.words)


def fill_record_fields(table: pl.DataFrame, kind: DropKind) -> tuple[pl.DataFrame, list[str]]:
    """(table with each empty `kind.record_fields` cell of a line taken from the other lines of its record, notes).

    A record-level field (an order's customer, time, status, currency) that a line leaves empty takes the
    value the other lines of the same `kind.record_key` in this file carry, only when they carry exactly one
    distinct non-empty value (compared as written); with none or conflicting values the cell stays empty and
    its rule quarantines the line. Ragged and truncated lines give no value (their cells may be shifted or
    cut). Reading the format, not guessing: Shopify writes Email, Financial Status, Created at and Currency
    on an order's first line item only. One cheap pass per field when no cell is empty."""
    if not kind.record_key or not table.height:
        return table, []
    key = kind.record_key
    empty = {c: _empty(c) for c in kind.record_fields}
    # a field with an empty cell and a written one (a column absent from the file is empty throughout)
    gaps = table.select(*[((e & ~_empty(key)).any() & (~e).any()).alias(c) for c, e in empty.items()]).row(0, named=True)
    fields = [c for c in kind.record_fields if gaps[c]]
    if not fields:
        return table, []
    gappy = table.lazy().filter(pl.any_horizontal(empty[c] for c in fields) & ~_empty(key)).select(key).unique()
    known = (table.lazy().filter(pl.col("_ragged").is_null() & ~pl.col("_truncated"))
             .join(gappy, on=key, how="semi")
             .group_by(key).agg(*[pl.col(c).filter(~empty[c]).unique().alias(f"_known_{c}") for c in fields]))
    fill = {c: empty[c] & (pl.col(f"_known_{c}").list.len() == 1) for c in fields}
    filled = (table.lazy().join(known, on=key, how="left", maintain_order="left")
              .with_columns(_filled=pl.any_horizontal(e.fill_null(False) for e in fill.values()),
                            **{f"_took_{c}": e.fill_null(False) for c, e in fill.items()})
              .with_columns(**{c: pl.when(pl.col(f"_took_{c}")).then(pl.col(f"_known_{c}").list.first())
                               .otherwise(pl.col(c)) for c in fields})
              .collect())
    took = filled.select(pl.col("_filled").sum(), *[pl.col(f"_took_{c}").sum().alias(c) for c in fields]).row(0, named=True)
    notes = [f"{took['_filled']:,} continuation line(s) took "
             f"{'/'.join(f'{c} ({took[c]:,})' if took[c] != took['_filled'] else c for c in fields if took[c])} "
             f"from the other lines of their {key} (written on one line per {key.removesuffix('_id')})"] \
        if took["_filled"] else []
    # which fields each line took (a bit per field): duplicates are lines identical as written, so a
    # continuation line filled up to equal its order's first line (the same SKU twice) stays a line
    written = pl.sum_horizontal(pl.col(f"_took_{c}").cast(pl.UInt32) * (1 << i) for i, c in enumerate(fields))
    return filled.select(*table.columns, written.alias(FILLED_FIELDS)), notes


FILLED_FIELDS = "_filled_fields"  # set by `fill_record_fields` where it filled any: compared by duplicates


def reporting_currency(values: pl.Series, declared: str | None) -> tuple[str | None, str, list[str]]:
    """(the file's reporting currency, the rule quarantining lines in any other currency or none, notes).

    `values`: the currency column as text (after `fill_record_fields`), compared trimmed and upper-case;
    `declared`: the file's `currency` in sources.yaml. The declared currency, else the file's only currency,
    else its most common one (by lines); two currencies equally common give none, and every line with a
    currency is quarantined: amounts in different currencies are never added (there are no exchange rates
    here) and the choice is never guessed. The rule is "" when no line is in another currency."""
    if not values.is_not_null().any():  # no currency written (10M events without the column: 0.28 s saved)
        return declared, "", []
    written = values.str.strip_chars().str.to_uppercase()
    counts = written.filter(written.is_not_null() & (written != "")).value_counts(sort=True, name="n")
    found = dict(zip(counts[values.name], counts["n"]))
    never = "; amounts in different currencies are never added"
    if declared is not None:
        others = {c: n for c, n in found.items() if c != declared}
        rule = f"currency is not the reporting currency {declared} declared in sources.yaml{never}"
        code, why = declared, "declared in sources.yaml"
    elif len(found) <= 1:
        return next(iter(found), None), "", []
    elif counts["n"][0] == counts["n"][1]:
        tied = counts.filter(pl.col("n") == counts["n"][0])[values.name].to_list()
        rule = (f"currency: the file holds as many {' as '.join(tied)} lines, so none is its reporting currency "
                f"(declare the shop's `currency` in sources.yaml){never}")
        return None, rule, [f"currency: no reporting currency ({', '.join(f'{n:,} {c}' for c, n in found.items())} "
                            "line(s)); every line with a currency quarantined — declare the shop's `currency` in "
                            "sources.yaml"]
    else:
        code, why = counts[values.name][0], f"the most common of the file's lines: {counts['n'][0]:,} of {counts['n'].sum():,}"
        others = {c: n for c, n in found.items() if c != code}
        rule = (f"currency is not the file's reporting currency {code} ({why}; declare the shop's `currency` in "
                f"sources.yaml to choose){never}")
    if not others:
        return code, "", []
    return code, rule, [f"currency: {code} is the reporting currency ({why}); "
                        f"{', '.join(f'{n:,} line(s) in {c}' for c, n in others.items())} quarantined, never added"]


def prepare(table: pl.DataFrame, kind: DropKind, today: date, spec: SourceSpec | None = None,
            delimiter: str = ",", may_hold_c1: bool = True) -> tuple[pl.DataFrame, Reading, list[str]]:
    """(table with `_date_<c>` / `_instant_<c>` for each date column, the file's Reading, notes).

    Record-level fields left empty on a record's other lines are first filled (`fill_record_fields`).
    Each check here is one cheap pass over a column; the costly readers (date-times, words in
    flags, decimal commas, control characters) only run where that pass found a reason to."""
    table, notes = fill_record_fields(table, kind)
    # every text column but the customer and session ids (near-unique keys, never a dimension; 10M events: ~65 ms
    # a column): `=HYPERLINK(…,"Shoes")` is "Shoes", never a category or product name
    table, formulas, formula_notes = formula_cells(table, [
        c for c in kind.columns if c not in (*kind.dates, *kind.numbers, *kind.flags, "customer_id", "session_id")])
    emails = mixed_case_emails(table["customer_id"]) if "customer_id" in kind.columns else []
    decimal_ids = integer_ids_as_decimals(table["customer_id"]) if "customer_id" in kind.columns else []
    notes += formula_notes + emails + decimal_ids
    # the kind's prepared columns (events: event names -> types, ~0.7 s at 10M) are worked out in a thread
    # while the dates are read (~1.4 s): both single-threaded polars passes over different columns
    prepared = _in_thread(PREPARED[kind.name], table) if kind.name in PREPARED else None
    dates, inferred_dates = {}, {}
    for column in kind.dates:
        read = read_timestamps(table[column], spec)
        declared = spec is not None and bool(spec.date_format)
        unread = table[column].filter(read.date.is_null() & table[column].is_not_null()) \
            if read.date.null_count() and not declared else None
        if unread is not None and not unread.is_empty():
            proved = infer_date_format(unread, table[column].len() - table[column].null_count(), today)
            if proved is not None:  # read again with the format the file's own values prove
                inferred_dates[column] = proved[0]
                read = read_timestamps(table[column], dataclasses.replace(spec or SourceSpec(match="*"),
                                                                          date_format=proved[0]))
                notes.append(f"{column}: {unread.len():,} value(s) are not ISO 8601 (e.g. {unread[0]!r}); read with "
                             f"date_format {proved[0]!r}, which this file's values prove: {proved[1]} (declare "
                             "date_format in sources.yaml to read them otherwise)")
            elif suggestion := suggest_date_format(unread):
                notes.append(f"{column}: {unread.len():,} value(s) are not ISO 8601 (e.g. {unread[0]!r}); {suggestion} — "
                             "declare it in sources.yaml")
        dates[f"_date_{column}"] = read.date
        dates[f"_instant_{column}"] = read.instant if read.instant is not None else \
            pl.repeat(None, table.height, dtype=pl.Datetime("us", "UTC"), eager=True)
        if read.naive_as_utc:
            notes.append(f"{column}: {read.naive_as_utc:,} time(s) without offset read as UTC "
                         "(declare the export's timezone in sources.yaml)")
        if read.early_year is not None:
            dates[f"_year_{column}"] = read.early_year
            early = table[column].filter(read.early_year.is_not_null())
            notes.append(f"{column}: {early.len():,} value(s) read with a year before {EARLIEST_YEAR} (e.g. {early[0]!r} "
                         f"as the year {read.early_year.drop_nulls()[0]}): quarantined, never dated — a 2-digit year "
                         "needs %y in sources.yaml date_format")
        if read.unresolved_local:
            notes.append(f"{column}: {read.unresolved_local:,} local time(s) do not exist or are ambiguous in "
                         f"{spec.timezone} (daylight saving): date kept, instant left empty")
    decimal = {c: infer_decimal(table[c], delimiter, spec) for c in kind.numbers}
    inferred = [c for c, mark in decimal.items() if mark == "," and not (spec and spec.decimal)]
    if inferred:
        notes.append(f"decimal comma inferred for {', '.join(inferred)} ({delimiter!r} delimiter, every amount 1.234,50 / 12,50)")
    # a decimal-point column holding a comma: only there are grouped values (1,185.85) looked for
    grouped = frozenset(c for c, mark in decimal.items() if mark == "." and table[c].str.contains(",", literal=True).any())
    words = frozenset(c for c in kind.flags if (table[c].str.len_bytes() > 1).any())
    # C1 characters are 0xC2 0x80-0x9F in UTF-8: a byte search rules most columns out
    suspect = tuple(c for c in kind.texts if may_hold_c1 and table[c].cast(pl.Binary).bin.contains(b"\xc2").any())
    prepared = prepared.result() if prepared is not None else {}
    # the currency of the rows that carry money (events: purchases, `CURRENCY_COUNTED`), else of every row
    currency, currency_rule, currency_notes = reporting_currency(
        prepared.pop(CURRENCY_COUNTED, table["currency"]), spec.currency if spec else None) \
        if "currency" in kind.columns else (None, "", [])
    notes += currency_notes
    early_years = frozenset(c for c in kind.dates if f"_year_{c}" in dates)
    return (table.with_columns(**dates, **prepared),
            Reading(today, spec, decimal, words, suspect, currency, currency_rule, early_years, grouped, formulas,
                    {c: no_category_spellings(table[c]) for c in kind.categories}, bool(emails), inferred_dates,
                    bool(decimal_ids)), notes)


def _in_thread(function, *args) -> Future:
    """`function(*args)` in a thread of its own, for polars work that can run beside the caller's (polars
    releases the GIL); `.result()` gives its value or raises its exception."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(function, *args)
    pool.shutdown(wait=False)  # its one worker ends when the function returns
    return future


def _empty(text: str) -> pl.Expr:
    return pl.col(text).is_null() | (pl.col(text) == "")


def customer_key(column: str = "customer_id") -> pl.Expr:
    """The customer id as written, except an e-mail address (it holds '@'), which is lower-cased: shops and mail
    systems treat `Ann@Shop.com` and `ann@shop.com` as one person (Shopify stores them lower-cased), and the same
    customer typed both ways must not count as two. Every input kind keys customers through this."""
    written = pl.col(column)
    return pl.when(written.str.contains("@", literal=True)).then(written.str.to_lowercase()).otherwise(written) \
        .alias(column)


def mixed_case_emails(ids: pl.Series) -> list[str]:
    """The note for a file whose customer ids include e-mail addresses with capitals (`customer_key`), or []
    (then the ids are kept as written: most exports have no '@' at all, found by one parallel pass)."""
    if not ids.to_frame("id").lazy().select(pl.col("id").str.contains("@", literal=True).any()).collect().item():
        return []
    emails = ids.filter(ids.str.contains("@", literal=True))
    mixed = emails.filter(emails != emails.str.to_lowercase())
    return [f"customer_id: {mixed.len():,} e-mail address(es) with capitals (e.g. {mixed[0]!r}) compared "
            "lower-cased, as one customer with the same address in any case"] if mixed.len() else []


DECIMAL_ID = r"^[0-9]+\.0+$"  # an integer id written as a decimal: `17850.0`


def integer_ids_as_decimals(ids: pl.Series) -> list[str]:
    """The note for a file whose every customer id is an integer written with a zero decimal part (`17850.0`:
    pandas writes an integer column holding a missing value as floats, and so saves the UCI Online Retail ids),
    or []. Such ids are read without it (`Reading.customer`), so the customer is one with the same id written
    `17850` in another export; a file where any id is otherwise keeps every id as written."""
    present = ids.drop_nulls()
    if present.is_empty() or not present[0].endswith(".0") or not present.str.contains(DECIMAL_ID).all():
        return []
    return [f"customer_id: every id is an integer written with a zero decimal part (e.g. {present[0]!r}, as pandas "
            "writes integer ids beside missing ones): read without it, so the same customer written without it "
            "in another export is one customer"]


def text_or_null(column: str) -> pl.Expr:
    """The text as written, null where it is empty or a missing marker."""
    return pl.when(_empty(column)).then(None).otherwise(pl.col(column)).alias(column)


# what exports write for "no category": ours, and Google Analytics' placeholders (GA4 `item_category`)
NO_CATEGORY_WORDS = [UNKNOWN_PRODUCT, "(not set)", "(none)"]


def no_category(column: str) -> pl.Expr:
    """True where the category is missing or spelled as none (`NO_CATEGORY_WORDS`, any case): never a
    category of its own, in every input kind."""
    return _empty(column) | pl.col(column).str.strip_chars().str.to_lowercase().is_in(NO_CATEGORY_WORDS)


def no_category_spellings(values: pl.Series) -> tuple[str, ...]:
    """The distinct non-empty values of a category column that `no_category` reads as none ("Unknown",
    " (not set)"); a file has a few distinct categories, so the rule runs on those only."""
    distinct = values.drop_nulls().unique().to_frame("value")
    return tuple(distinct.filter(no_category("value") & (pl.col("value") != ""))["value"].sort())



# the value part each reason ends with: `: '<value as written, <= 30 characters>'` (or a count), before
# the next reason of the row ("; ") or the end
VALUE_PART = r"(?s): (?:'.{0,30}?'|\d+)(; |$)"


def reason_rule(reason: pl.Expr) -> pl.Expr:
    """A quarantine reason without its values: the rule part that quarantine summaries group by
    ("purchase_amount is not a finite number: 'inf'" -> "purchase_amount is not a finite number"), and without
    the line a whole-record reason names ("(line 2: " -> "(line: ", see `quarantine_whole_records`)."""
    return reason.str.replace_all(VALUE_PART, "${1}").str.replace_all(WHOLE_RECORD_LINE, "(line: ")


WHOLE_RECORD_LINE = r"\(line \d+: "


def _date_rules(column: str, reading: Reading, required: bool = False) -> list[tuple[pl.Expr, pl.Expr]]:
    typed = pl.col(f"_date_{column}")
    limit = reading.today + FUTURE_TOLERANCE
    unread = ~_empty(column) & typed.is_null()
    early = [] if column not in reading.early_years else [
        _bad(pl.col(f"_year_{column}").is_not_null(), early_year_reason(column, reading.spec))]
    if early:  # one reason per value: a misread year is not also "not ISO 8601"
        unread = unread & pl.col(f"_year_{column}").is_null()
    return [
        *([_bad(_empty(column), f"empty {column}")] if required else []),
        *early,
        _bad(unread, value_last(column + date_hint(reading.spec, reading.inferred_dates.get(column)), column)),
        _bad(typed > pl.lit(limit), value_last(f"{column} is in the future (after {limit})", column)),
    ]


def _number_rules(column: str, reading: Reading) -> list[tuple[pl.Expr, pl.Expr]]:
    return [
        _bad(~_empty(column) & reading.number(column).is_null(),
             number_hint(column, reading.decimal.get(column, "."))),
        _bad(reading.number(column) < 0, value_last(f"negative {column}", column)),
    ]


# an id a spreadsheet wrote in scientific notation (Excel's General format shows 123456789012 as
# 1.23457E+11 and saves it so): its digits are lost, and different ids become the same text
SPREADSHEET_ROUNDED_ID = r"^-?[0-9](\.[0-9]+)?E\+[0-9]+$"


def _text_rules(kind: DropKind, reading: Reading) -> list[tuple[pl.Expr, pl.Expr]]:
    return [
        *[_bad(_empty(c), f"empty {c}") for c in kind.required if c not in kind.dates + kind.flags],
        *[_bad(pl.col(c).str.contains(SPREADSHEET_ROUNDED_ID),
               value_last(f"{c} was rounded by a spreadsheet into scientific notation (the real id is lost; export "
                          "the column as text)", c)) for c in kind.columns if c.endswith("_id")],
        *[_bad(pl.col(c).str.contains(C1_CONTROL),
               value_last(f"{c} holds a C1 control character (text decoded with the wrong encoding? declare "
                          "`encoding` in sources.yaml)", c)) for c in reading.suspect_text],
        *[_bad(pl.col(c).str.starts_with("="), value_last(f"{c} {FORMULA_RULE}", c)) for c in reading.formulas],
    ]


def _flag_rules(column: str, reading: Reading, required: bool = False) -> list[tuple[pl.Expr, pl.Expr]]:
    return [
        *([_bad(_empty(column), f"empty {column}")] if required else []),
        _bad(~_empty(column) & reading.flag(column).is_null(),
             value_last(f"{column} must be 0 or 1 (or true/false, yes/no)", column)),
    ]


def session_rules(reading: Reading) -> list[tuple[pl.Expr, pl.Expr]]:
    purchase, amount = reading.flag("purchase_made"), reading.number("purchase_amount")
    return [
        *_text_rules(KINDS["sessions"], reading),
        *_date_rules("session_date", reading, required=True),
        *_flag_rules("purchase_made", reading, required=True),
        *_number_rules("purchase_amount", reading),
        _bad((amount > 0) & (purchase == False), "purchase_amount > 0 with purchase_made=0"),  # noqa: E712
        _bad(_empty("purchase_amount") & (purchase == True), "purchase_made=1 without purchase_amount"),  # noqa: E712
        *_number_rules("browsing_time_sec", reading),
        *_flag_rules("added_to_cart", reading),
    ]


def typed_sessions(reading: Reading) -> list[pl.Expr]:
    product = pl.col("product_viewed")
    return [
        pl.col("session_id"),
        reading.customer(),
        pl.col("_date_session_date").alias("session_date"),
        pl.col("_instant_session_date").alias("session_start"),
        pl.when(reading.no_category("product_viewed")).then(pl.lit(UNKNOWN_PRODUCT)).otherwise(product)
        .alias("product_viewed"),
        reading.number("browsing_time_sec").alias("browsing_time_sec"),
        reading.flag("purchase_made").alias("purchase_made"),
        reading.number("purchase_amount").fill_null(0.0).alias("purchase_amount"),
        reading.flag("added_to_cart").alias("added_to_cart"),
    ]


def customer_rules(reading: Reading) -> list[tuple[pl.Expr, pl.Expr]]:
    return [*_text_rules(KINDS["customers"], reading), *_date_rules("signup_date", reading)]


def typed_customers(reading: Reading) -> list[pl.Expr]:
    age = reading.number("age")
    in_range = age.is_between(10, 120) & (age == age.floor())
    return [
        reading.customer(),
        pl.when(in_range).then(age.cast(pl.Int64)).otherwise(None).alias("age"),
        (~_empty("age") & ~in_range.fill_null(False)).alias("age_out_of_range"),
        text_or_null("gender"),
        text_or_null("location"),
        pl.col("_date_signup_date").alias("signup_date"),
    ]


def campaign_rules(reading: Reading) -> list[tuple[pl.Expr, pl.Expr]]:
    return [
        *_text_rules(KINDS["campaigns"], reading),
        *_date_rules("start_date", reading, required=True),
        *_date_rules("end_date", reading, required=True),
        _bad(pl.col("_date_end_date") < pl.col("_date_start_date"), "end_date before start_date"),
    ]


def typed_campaigns(reading: Reading) -> list[pl.Expr]:
    return [
        pl.col("campaign_id"), pl.col("name"), pl.col("_date_start_date").alias("start_date"),
        pl.col("_date_end_date").alias("end_date"), pl.col("channel"),
    ]


# kind -> function(text table) -> {column: values}: what rules and typed values of that kind read, worked out
# once over the whole file in `prepare` (an expression would run again for every rule and batch reading it)
PREPARED = {}
CURRENCY_COUNTED = "_currency_counted"  # a prepared series: the currency of the rows whose amounts are added
# kind -> (a prepared column naming the record a row belongs to, function(good rows of records given by more than one
# row, text, in line order) -> `line` of the rows that repeat their record: counted duplicates (events: a purchase
# logged again with the same order id)
REPEATS = {}
# kind -> (ingest rules, typed values, the clean table whose row rules its clean rows must satisfy)
RULES = {"sessions": (session_rules, typed_sessions, CleanSessions),
         "customers": (customer_rules, typed_customers, CleanCustomers),
         "campaigns": (campaign_rules, typed_campaigns, None)}


CONFLICT_REASON = "repeated in this file with different content (every version quarantined)"
BATCH_ROWS = 2_000_000  # rows judged at a time: bounds the working set at 10M-row drops


def _judge(table: pl.DataFrame, kind: DropKind, rules: list, typed_values: list[pl.Expr],
           schema_rules: tuple[RowCheck, ...]) -> pl.DataFrame:
    """Text rows + `_rule<i>` flags, `_blank`, the typed values as `_typed_<name>`, `_schema<i>` flags
    (the clean schema's row rules on the typed values), `_parse_bad` and `_bad`.

    One lazy projection, so the date and number parsing that rules and typed values share runs once;
    the schema rules then read the typed columns already computed."""
    judged = table.lazy().with_columns(
        _blank=pl.all_horizontal(_empty(c) for c in kind.columns) & pl.col("_ragged").is_null(),
        *[cond.fill_null(False).alias(f"_rule{i}") for i, (cond, _) in enumerate(rules)],
        *[expr.alias(f"_typed_{expr.meta.output_name()}") for expr in typed_values],
    ).with_columns(_parse_bad=pl.col("_blank") | pl.any_horizontal(f"_rule{i}" for i in range(len(rules)))).collect()
    typed = judged.lazy().select(pl.col(f"_typed_{name}").alias(name) for name in {r.column for r in schema_rules})
    flags = [frame.to_series() for frame in
             pl.collect_all([rule.broken(typed, f"_schema{i}") for i, rule in enumerate(schema_rules)])]
    # `_bad` from the flags alone, then attached: `with_columns` on the wide frame took 0.1-0.38 s at 1M rows, this 2 ms
    bad = pl.DataFrame([judged["_parse_bad"], *flags]).select(pl.any_horizontal(pl.all()).alias("_bad")).to_series()
    return judged.hstack([*flags, bad])


def _schema_reason(rule: RowCheck, kind: DropKind) -> pl.Expr:
    """"<column> breaks the clean schema rule '<rule>': '<text>'": the rule by its name, then the value as
    written (none when the value is missing, or the column is derived)."""
    text = f"{rule.column} breaks the clean schema rule '{rule.name}'"
    if rule.column not in kind.columns:
        return pl.lit(text)
    return pl.coalesce(value_last(text, rule.column), pl.lit(text))


def _conflicting_ids(table: pl.DataFrame, kind: DropKind) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(line of every row whose id occurs again in this file with other content (order lines,
    ids Excel rounded to `1.23457E+11`): none of the versions can be chosen, so every one is quarantined.
    Only rows whose id hash repeats are grouped (usually none at 10M rows); they are returned too. A kind
    that is not `keyed` has no row id: its candidates are the rows whose hash of `kind.candidate_key` (else
    of the whole row) repeats (1M events: 4.2 -> ~1.1 s for split_rows, where every customer id repeats)."""
    if not kind.keyed:  # an order's lines / a customer's events share their first column: only whole rows repeat
        # per-column hashes (a seed each) combined: `hash_rows` first copied the text into one chunk
        # (10M events: +1.4 GiB, 1.7 -> 0.8 s CPU); equal rows hash equal, candidates are compared on their text
        row_hash = pl.reduce(lambda a, b: a ^ b, [pl.col(c).hash(seed=i) for i, c in
                                                  enumerate(kind.candidate_key or kind.columns)])
        candidate = repeated(table.select(row_hash).to_series())
        record = REPEATS.get(kind.name, ("",))[0]
        if record in table.columns:
            candidate = candidate | repeated(table[record])
        return pl.DataFrame(schema={"line": pl.Int64}), table.filter(candidate)
    key = kind.required[0]
    shared = table.filter(repeated(table[key].hash(seed=0)))
    return (
        shared.lazy().select(key, "line", _content=pl.struct(kind.columns))
        .with_columns(_versions=pl.col("_content").n_unique().over(key))
        .filter(pl.col("_versions") > 1).select("line").collect()
    ), shared


def split_rows(table: pl.DataFrame | list[pl.DataFrame], kind: DropKind, today: date, batch_rows: int = BATCH_ROWS,
               reading: Reading | None = None) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """(typed clean rows, quarantined text rows with `reason`, number of in-file duplicates).

    `table` comes from `read_text_table`; `reading` (with the parsed dates) from `prepare`, which
    is run here with the defaults when not given. Rules are evaluated as booleans over every row;
    reason texts are built only for the few rows that broke one. A row that passes every ingest rule
    is then judged by the clean table's own row rules (schemas.row_checks: nullability, ranges,
    finiteness — pandera's check functions on the typed values), so every clean row already
    satisfies the clean schema and one bad cell can never fail the table's validation; such a row is
    quarantined naming the schema rule. An exact duplicate repeats its row's id, so only rows whose
    id occurs twice are compared (on the full text: a hash collision can never drop a row); an id
    repeated with other content quarantines every version. The rest is judged in batches of
    `batch_rows` so that a 10M-row drop never holds a second full copy of itself.

    `table` may instead be the prepared table already cut into batches (`batches`, with `reading`):
    the list is then consumed, each batch released once judged, so the text of a 10M-row drop and
    its typed rows are never held in full at once (10M events: split_rows peak 3.9 -> 2.7 GiB).
    """
    if isinstance(table, pl.DataFrame):  # the caller keeps the table: its batches are slices of it
        if reading is None:
            table, reading, _ = prepare(table, kind, today)
        table = batches(table, batch_rows)
    elif reading is None:
        raise ValueError("split_rows: a list of batches needs the `reading` that prepared them")
    pending = table
    table = pl.concat(pending, rechunk=False)  # the same chunks: the whole drop for the row-id checks
    rule_list, typed, model = RULES[kind.name]
    key = kind.required[0]
    conflicts, shared = _conflicting_ids(table, kind)
    conflict_rule = [] if conflicts.is_empty() else [(
        pl.col("line").is_in(conflicts["line"].implode()),
        value_last(f"{key} {CONFLICT_REASON}", key))]
    rules = [(pl.col("_truncated"), pl.lit("truncated last line")),
             (pl.col("_ragged").is_not_null(), pl.col("_ragged")), *conflict_rule, *rule_list(reading)]
    typed_values = typed(reading)
    typed_names = [expr.meta.output_name() for expr in typed_values]
    schema_rules = tuple(r for r in row_checks(model) if r.column in typed_names) if model else ()
    reason = pl.when(pl.col("_blank")).then(pl.lit("blank line")).when(pl.col("_ragged").is_not_null()).then(
        # a ragged row's values sit in the wrong columns: its field count is the one reason
        pl.concat_str([pl.when(pl.col("_truncated")).then(pl.lit("truncated last line")), "_ragged"],
                      separator="; ", ignore_nulls=True)
    ).when(pl.col("_parse_bad")).then(
        pl.concat_str([pl.when(pl.col(f"_rule{i}")).then(msg) for i, (_, msg) in enumerate(rules)],
                      separator="; ", ignore_nulls=True)
    ).otherwise(pl.concat_str([pl.when(pl.col(f"_schema{i}")).then(_schema_reason(rule, kind))
                               for i, rule in enumerate(schema_rules)], separator="; ", ignore_nulls=True)
                if schema_rules else pl.lit(None, pl.String))  # campaigns have no clean-table row rules
    # duplicates: among good rows sharing an id, every copy of an already-seen text is one
    candidates = _judge(shared, kind, rules, typed_values, schema_rules).filter(~pl.col("_bad"))
    as_written = [*kind.columns, *([FILLED_FIELDS] if FILLED_FIELDS in candidates.columns else [])]
    first_written = pl.struct(as_written).is_first_distinct()
    duplicate_lines = candidates.filter(~first_written)["line"]
    if kind.name in REPEATS:
        duplicate_lines = pl.concat([duplicate_lines, REPEATS[kind.name][1](candidates.filter(first_written))])
    source_file = table["source_file"][0] if table.height else ""
    quarantine_columns, reason = _as_written(table, kind.columns, reason)
    # a record's lines may lie in two batches: its text is kept to the end (the same chunks, no copy)
    text = table if kind.whole_records else None
    del table
    clean_parts, quarantine_parts = [], []
    while pending:  # once at least: a header-only file is one empty batch
        # the rules are evaluated once; each half then filters only the columns it keeps
        judged = _judge(pending.pop(0), kind, rules, typed_values, schema_rules).lazy()
        quarantined, clean = pl.collect_all([
            judged.filter(pl.col("_bad")).select(*quarantine_columns, "source_file", "line", reason=reason),
            judged.filter(~pl.col("_bad") & ~pl.col("line").is_in(duplicate_lines.implode())).select(
                *[pl.col(f"_typed_{name}").alias(name) for name in typed_names],
                pl.lit(source_file).alias("source_file"), "line"),
        ])
        quarantine_parts.append(quarantined)
        clean_parts.append(clean)
        del judged
    clean, quarantined = pl.concat(clean_parts), pl.concat(quarantine_parts)
    if text is not None:
        clean, quarantined = quarantine_whole_records(clean, quarantined, text, kind, quarantine_columns)
    return clean, quarantined, duplicate_lines.len()


WHOLE_RECORD_REASON = "another line of this "  # how the reason of a line quarantined with its record begins


def quarantine_whole_records(clean: pl.DataFrame, quarantined: pl.DataFrame, text: pl.DataFrame, kind: DropKind,
                             quarantine_columns: list[pl.Expr]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(clean, quarantined) with the clean lines of every record that has a quarantined line moved to the
    quarantine (as written in `text`, the drop's text rows), each with a reason naming the record's first
    quarantined physical line and its rule (values left out), then the record key: "another line of this
    order_id is quarantined (line 2: unit_price is ambiguous …), so the order is quarantined whole, never counted
    as a smaller purchase: '4101'". Lines without a key (blank, `empty order_id`) belong to no record. The
    accounting is unchanged: a line moves from clean to quarantined. Only few rows move: the rest is untouched."""
    key, record = kind.record_key, kind.record_key.removesuffix("_id")
    faulty = (quarantined.lazy().filter(~_empty(key)).sort("line")
              .group_by(key).agg(_faulty_line=pl.col("line").first(), _faulty_rule=pl.col("reason").first()))
    moved = clean.lazy().select(key, "line").join(faulty, on=key).drop(key).collect()
    if moved.is_empty():
        return clean, quarantined
    rule = pl.concat_str(pl.lit(f"{WHOLE_RECORD_REASON}{key} is quarantined (line "), pl.col("_faulty_line").cast(pl.String),
                         pl.lit(": "), reason_rule(pl.col("_faulty_rule")).str.replace_all("; ", ", ", literal=True),
                         pl.lit(f"), so the {record} is quarantined whole, {kind.whole_records}"))
    rows = (text.lazy().join(moved.lazy(), on="line")
            .select(*quarantine_columns, "source_file", "line", reason=value_last(rule, key)).collect())
    return (clean.filter(~pl.col("line").is_in(moved["line"].implode())),
            pl.concat([quarantined, rows.select(quarantined.columns)]).sort("line"))


def batches(table: pl.DataFrame, batch_rows: int = BATCH_ROWS) -> list[pl.DataFrame]:
    """`table` as consecutive slices of `batch_rows` rows (no copy); at least one, empty for an empty table."""
    return [table.slice(offset, batch_rows) for offset in range(0, max(table.height, 1), batch_rows)]


def parse_drop(raw: bytes | Path, kind_name: str, source_file: str, today: date | None = None,
               spec: SourceSpec | None = None) -> ParsedDrop:
    """One drop (its bytes, or its path: then polars parses the file itself) -> its three fates.

    `spec`: the file's sources.yaml entry (`sources.spec_for`), if any. Raises FileRejected for
    whole-file problems."""
    kind = KINDS[kind_name]
    today = today or date.today()
    read = read_text_table(raw, kind, source_file, spec)
    table, reading, value_notes = prepare(read.table, kind, today, spec, read.delimiter, read.may_hold_c1)
    rows_in, pending = table.height, batches(table, BATCH_ROWS)
    read.table = table = None  # split_rows releases each batch once judged: nothing else may hold the text
    clean, quarantine, duplicates = split_rows(pending, kind, today, reading=reading)
    declared = [f"read as declared by {spec.describe()}"] if spec is not None else []
    return ParsedDrop(kind_name, source_file, clean, quarantine, rows_in, duplicates,
                      read.notes + value_notes + whole_record_notes(quarantine, kind) + declared, read.encoding)


def whole_record_notes(quarantine: pl.DataFrame, kind: DropKind) -> list[str]:
    """The drop's note on records quarantined whole (`quarantine_whole_records`), if any."""
    if not kind.whole_records or quarantine.is_empty():
        return []
    moved = quarantine.filter(pl.col("reason").str.starts_with(WHOLE_RECORD_REASON))
    if moved.is_empty():
        return []
    return [f"{moved[kind.record_key].n_unique():,} {kind.record_key.removesuffix('_id')}(s) with a quarantined line "
            f"quarantined whole ({moved.height:,} more line(s)): read in part, an {kind.record_key.removesuffix('_id')} "
            f"would be {kind.whole_records.removeprefix('never ')}"]
