"""Reading single values of an export, the same way in every input kind (DESIGN.md "Real exports").

Pure polars; every function takes text (`pl.Series` / column names) and gives typed values with
null where a value cannot be read for sure; callers quarantine those with `date_hint` /
`number_hint` in the reason. Nothing here guesses: a value is either read by a documented rule or
left unread.

- Missing: `NULL_MARKERS` (plus the empty string and a file's declared `null_markers`) are missing.
- Dates: `read_timestamps` — ISO `YYYY-MM-DD`, ISO 8601 date-times (space or `T`, fractional
  seconds, `Z`, `±HH:MM`, `±HHMM`, `±HH`, trailing ` UTC`), or the file's declared `date_format`
  (a strftime format, or `epoch_s` / `epoch_ms` / `epoch_us`: integers since 1970-01-01 UTC).
- Numbers: `number_expr` — finite only, `.` decimal unless `,` is declared or inferred
  (`infer_decimal`); thousands separators of the other mark are read where they cannot be the decimal mark
  (`1,185.85`, `1.185,85`, `1,234,567`); `1.299` in a decimal-comma file and `1,185` in a decimal-point
  one are ambiguous and stay unread.
- Formula cells: `formula_cells` — a spreadsheet formula written as text (`=HYPERLINK("<link>","Shoes")`)
  is read as its display text when it is a hyperlink with a literal one (what the cell shows); any other
  formula's value is not in the export, and the cell stays unread (callers quarantine it: "formula cell").
- Flags: `flag_expr` — `0/1`, `true/false`, `yes/no`, and Excel's localised TRUE/FALSE (`WAHR/FALSCH`,
  `VRAI/FAUX`, `VERDADERO/FALSO`, `VERO/FALSO`, `WAAR/ONWAAR`, `VERDADEIRO/FALSO`), any case.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import polars as pl

from ecom_assets.ingest.sources import EPOCH_UNITS, SourceSpec

NULL_MARKERS = ("NULL", "null", "N/A", "NA", "n/a", "None", "nan", "NaN", "-")
ISO_DATE = "%Y-%m-%d"
# ISO 8601 date-time: date, time (seconds and fraction optional), then an optional offset
ISO_DATETIME = (r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(?:[.,](\d{1,9}))?"
                r"\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?$")
# English, and the words Excel writes for TRUE/FALSE in a German, French, Spanish, Italian, Dutch or Portuguese
# locale (a boolean column saved as CSV there): each means one thing only
TRUE_WORDS = ("1", "true", "yes", "wahr", "vrai", "verdadero", "vero", "waar", "verdadeiro")
FALSE_WORDS = ("0", "false", "no", "falsch", "faux", "falso", "onwaar")
DECIMAL_COMMA = r"^[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+),\d+$"  # 1.234,50 / 12,50
AMBIGUOUS_IN_DECIMAL_COMMA = r"^[+-]?\d{1,3}\.\d{3}$"  # 1.299: 1.299 or 1299?
# grouped by the other mark: both marks with the decimal one last (1.185,85 / 1,185.85), or two groups and more
# (1.234.567 / 1,234,567: a decimal mark is written once), so the grouping mark cannot be the decimal one
GROUPED = {",": r"^[+-]?\d{1,3}(?:\.\d{3}){2,}$",
           ".": r"^[+-]?\d{1,3}(?:,\d{3})+\.\d+$|^[+-]?\d{1,3}(?:,\d{3}){2,}$"}
AMBIGUOUS = {",": AMBIGUOUS_IN_DECIMAL_COMMA, ".": r"^[+-]?\d{1,3},\d{3}$"}  # 1,185: 1185 or 1.185?
BOTH_MARKS_DECIMAL_COMMA = r"^[+-]?\d{1,3}(?:\.\d{3})+,\d+$"  # 1.185,85: never a decimal-point number
INTEGER = r"^[+-]?\d+$"
C1_CONTROL = r"[\x{80}-\x{9F}]"  # C1 control characters: mis-decoded text, never data


def null_markers(spec: SourceSpec | None) -> list[str]:
    """The built-in missing-value markers plus the file's declared ones."""
    return [*NULL_MARKERS, *(spec.null_markers if spec else ())]


@dataclass
class Timestamps:
    """`read_timestamps` result, aligned with its input.

    date: pl.Date, the calendar date written in the value; null where missing or unreadable.
    instant: pl.Datetime("us", "UTC"), null where only a date was given (or the local time does not
      exist / is ambiguous in the declared zone); None when no value carried a time.
    naive_as_utc: values with a time but neither an offset nor a declared `timezone`: read as UTC.
    unresolved_local: local times that do not exist or are ambiguous in the declared zone (DST).
    early_year: pl.Int32, the year a value was read with where it is before `EARLIEST_YEAR` (date and
      instant left null there), null elsewhere; None when there is none.
    """

    date: pl.Series
    instant: pl.Series | None
    naive_as_utc: int = 0
    unresolved_local: int = 0
    early_year: pl.Series | None = None


# polars' `%Y` takes any count of digits ("12/1/10" with "%m/%d/%Y" is 0010-12-01) and ISO shapes take
# "10-12-01": a year before this is a misread 2- or 3-digit year, never a shop's date, and stays unread
EARLIEST_YEAR = 1900
_EARLIEST = datetime(EARLIEST_YEAR, 1, 1).date()


def _early(date: pl.Series) -> pl.Series:
    """Boolean: the date is before `EARLIEST_YEAR` (null dates are False); a comparison of the stored
    day numbers, not a year extraction (5M dates: 0.069 -> 0.002 s CPU)."""
    return (date < _EARLIEST).fill_null(False)


def read_timestamps(text: pl.Series, spec: SourceSpec | None = None) -> Timestamps:
    """Text column -> Timestamps. Plain `YYYY-MM-DD` takes one vectorised parse over the column;
    only the values that are not (usually none) go through the declared format and the ISO 8601
    date-time pattern, so a date-only 10M-row column costs what it did before date-times existed."""
    # a column of date-times skips the date parse (0.3 s per million values that would all fail it)
    fast = text.str.to_date(ISO_DATE, strict=False) if (text.str.len_bytes() == 10).any() else \
        pl.repeat(None, text.len(), dtype=pl.Date, eager=True)
    fast_early, early = None, _early(fast)
    if early.any():  # read again below: a declared `%y` may read it, else its year is reported
        fast_early = pl.select(pl.when(early).then(fast.dt.year())).to_series()
        fast = fast.zip_with(~early, pl.repeat(None, text.len(), dtype=pl.Date, eager=True))
    slow = fast.is_null() & text.is_not_null()
    if not slow.any():
        return Timestamps(fast, None)
    # a column of date-times (events, orders) is read whole: gathering and scattering back 10M values cost ~1 s
    positions = None if slow.all() else slow.arg_true()
    values = text if positions is None else text.gather(positions)
    naive = pl.repeat(None, values.len(), dtype=pl.Datetime("us"), eager=True)
    offset_minutes = pl.repeat(None, values.len(), dtype=pl.Int64, eager=True)
    date_only = pl.repeat(None, values.len(), dtype=pl.Date, eager=True)
    if spec is not None and spec.date_format in EPOCH_UNITS:
        naive, offset_minutes = _epoch(values, EPOCH_UNITS[spec.date_format])
    elif spec is not None and spec.date_format:
        if spec.date_has_time:
            naive = values.str.to_datetime(spec.date_format, strict=False, time_unit="us")
        else:
            date_only = values.str.to_date(spec.date_format, strict=False)
    naive, offset_minutes = _common_iso_shapes(values, naive, offset_minutes)
    rest = naive.is_null().arg_true()  # what neither the declaration nor the common shapes read
    iso = values.gather(rest).str.extract_groups(ISO_DATETIME).struct.unnest()
    if iso.height:
        stamp = (iso["1"] + " " + iso["2"] + iso["3"].fill_null(":00") + "." + iso["4"].fill_null("0"))
        naive = naive.scatter(rest, stamp.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us"))
        offset_minutes = offset_minutes.scatter(rest, pl.select(_offset_minutes(iso["5"])).to_series())
    date = date_only.fill_null(naive.dt.date())
    early = _early(date)
    early_year = fast_early
    if early.any():
        year = pl.select(pl.when(early).then(date.dt.year())).to_series()
        if positions is not None:
            year = pl.repeat(None, text.len(), dtype=pl.Int32, eager=True).scatter(positions, year)
        early_year = year if early_year is None else year.fill_null(early_year)
        naive = naive.zip_with(~early, pl.repeat(None, values.len(), dtype=pl.Datetime("us"), eager=True))
        date = date.zip_with(~early, pl.repeat(None, values.len(), dtype=pl.Date, eager=True))
    date = date if positions is None else fast.scatter(positions, date)
    if early_year is not None:  # a value read again plausibly (a declared `%y`) is no early year
        early_year = pl.select(pl.when(date.is_null()).then(early_year)).to_series()
    has_offset = offset_minutes.is_not_null() & naive.is_not_null()
    zoned = _as_utc(naive, offset_minutes, spec.timezone if spec else None)
    instant = zoned if positions is None else \
        pl.repeat(None, text.len(), dtype=pl.Datetime("us", "UTC"), eager=True).scatter(positions, zoned)
    naive_times = naive.is_not_null() & ~has_offset
    return Timestamps(
        date=date,
        instant=instant,
        naive_as_utc=int(naive_times.sum()) if not (spec and spec.timezone) else 0,
        unresolved_local=int((naive_times & zoned.is_null()).sum()),
        early_year=early_year,
    )


# instants an epoch declaration may give: a value outside is read in the wrong unit (seconds declared,
# microseconds written), never shifted into range by a guess
EPOCH_RANGE = (datetime(1971, 1, 1), datetime(2200, 1, 1))


def _epoch(values: pl.Series, unit: str) -> tuple[pl.Series, pl.Series]:
    """Integer text since 1970-01-01 UTC in `unit` -> (naive UTC datetime[us], offset 0); null where
    the text is not an integer or the instant falls outside `EPOCH_RANGE`."""
    number = pl.when(pl.lit(values).str.contains(INTEGER)).then(pl.lit(values)).cast(pl.Int64, strict=False)
    stamp = pl.from_epoch(number, time_unit=unit).cast(pl.Datetime("us"))
    stamp = pl.when(stamp.is_between(*EPOCH_RANGE)).then(stamp)
    read = pl.DataFrame().select(naive=stamp, offset=pl.when(stamp.is_not_null()).then(pl.lit(0, pl.Int64)))
    return read["naive"], read["offset"]


# (strptime format, offset minutes; None: naive) of the ISO 8601 date-times exports usually write;
# a literal suffix and no fraction keep polars on its fixed-width fast path
COMMON_ISO_SHAPES = tuple((f"%Y-%m-%d{sep}%H:%M:%S{fraction}{suffix}", minutes)
                          for suffix, minutes in ((" UTC", 0), ("Z", 0), ("", None))
                          for fraction in ("", "%.f") for sep in (" ", "T"))


def _common_iso_shapes(values: pl.Series, naive: pl.Series, offset_minutes: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Read the common shapes (`2019-10-01 00:00:00 UTC`, `…T…Z`, naive with seconds) by one
    vectorised strptime each, until nothing is left: the general pattern below is a regex (~2.4 s per
    million values), a shape ~0.1 s. Fills only what is still unread (a declared format wins)."""
    for fmt, minutes in COMMON_ISO_SHAPES:
        todo = naive.is_null()
        if not todo.any():
            break
        # no cache: date-times are nearly all distinct, and caching them cost 10M values 1.6 -> 0.8 s
        parsed = values.str.to_datetime(fmt, strict=False, time_unit="us", cache=False)
        hit = todo & parsed.is_not_null()
        if hit.all():  # one shape reads the whole column (an export writes one): taken as it is
            return parsed, pl.repeat(minutes, values.len(), dtype=pl.Int64, eager=True)
        if hit.any():
            naive = naive.zip_with(~hit, parsed)
            offset_minutes = offset_minutes.zip_with(~hit, pl.repeat(minutes, values.len(), dtype=pl.Int64, eager=True))
    return naive, offset_minutes


def _offset_minutes(offset: pl.Series) -> pl.Expr:
    """`Z`/`UTC` -> 0, `+05:30` / `+0530` / `+05` -> 330; null when the value had no offset."""
    digits = pl.lit(offset).str.replace(":", "", literal=True)
    hours = digits.str.slice(1, 2).cast(pl.Int64, strict=False)
    minutes = digits.str.slice(3, 2).cast(pl.Int64, strict=False).fill_null(0)
    sign = pl.when(digits.str.starts_with("-")).then(-1).otherwise(1)
    return (pl.when(pl.lit(offset).is_in(["Z", "z", "UTC"])).then(pl.lit(0, pl.Int64))
            .otherwise(sign * (hours * 60 + minutes)))


def _as_utc(naive: pl.Series, offset_minutes: pl.Series, timezone: str | None) -> pl.Series:
    """The UTC instant: an explicit offset wins; a naive time is local to the declared zone (null
    where DST makes it non-existent or ambiguous), else read as UTC."""
    frame = pl.DataFrame({"naive": naive, "offset": offset_minutes})
    local = pl.col("naive").dt.replace_time_zone(timezone, ambiguous="null", non_existent="null") \
        .dt.convert_time_zone("UTC") if timezone else pl.col("naive").dt.replace_time_zone("UTC")
    return frame.select(
        pl.when(pl.col("offset").is_not_null())
        .then((pl.col("naive") - pl.duration(minutes=pl.col("offset"))).dt.replace_time_zone("UTC"))
        .otherwise(local)
    ).to_series()


# what exports write instead of ISO 8601, tried in this order when a file's dates are unreadable
COMMON_DATE_FORMATS = ("%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M", "%m/%d/%Y", "%d/%m/%Y", "%m/%d/%y %H:%M", "%d/%m/%y %H:%M",
                       "%m/%d/%y", "%d/%m/%y", "%d.%m.%Y %H:%M", "%d.%m.%Y", "%d-%m-%Y", "%Y%m%d", "%Y/%m/%d",
                       "%d/%m/%Y %H:%M:%S", "%m/%d/%Y %H:%M:%S", "%d.%m.%Y %H:%M:%S")
SUGGESTION_SAMPLE = 2_000


def suggest_date_format(unread: pl.Series) -> str | None:
    """A `date_format` line for sources.yaml that reads every one of `unread` (a sample of a file's
    unreadable date values), or None. Where a day-first and a month-first format both read them all
    (every day <= 12), both are named: the values cannot decide, the user must. Where no format reads them all
    because they mix both orders (`25/01/2024` beside `09/29/2024`), that is said (`_mixed_day_month`)."""
    sample = unread.drop_nulls().str.strip_chars().head(SUGGESTION_SAMPLE)
    if sample.is_empty():
        return None
    fits = [fmt for fmt in COMMON_DATE_FORMATS if _reads(sample, fmt).all()]
    if not fits:
        return _mixed_day_month(sample)
    if len(fits) == 1:
        return f'date_format: "{fits[0]}" reads every one of them'
    return "each of " + ", ".join(f'"{f}"' for f in fits[:3]) + " reads every one of them (the values cannot " \
        "tell day-first from month-first: declare the export's)"


def _mixed_day_month(sample: pl.Series) -> str | None:
    """The words for values of both orders: the first day-first format of COMMON_DATE_FORMATS reading some values
    its month-first twin (`_day_month_swapped`) cannot while the twin reads others it cannot, with one example of
    each; None when no such pair. Such a file holds no one format: only a declared date_format reads it."""
    for fmt in (f for f in COMMON_DATE_FORMATS if f.startswith("%d")):
        twin = _day_month_swapped(fmt)
        day, month = _reads(sample, fmt), _reads(sample, twin)
        day_only, month_only = sample.filter(day & ~month), sample.filter(month & ~day)
        if day_only.len() and month_only.len():
            return (f"no one format reads them all: the file holds values only day-first {fmt!r} reads (such as "
                    f"{day_only[0]!r}) and others only month-first {twin!r} reads (such as {month_only[0]!r}), so it "
                    "cannot be read without a declared date_format (values in the other order stay quarantined)")
    return None


def _reads(values: pl.Series, fmt: str, today: date | None = None) -> pl.Series:
    """Boolean per value: the strptime format `fmt` reads it as a plausible date — not before EARLIEST_YEAR
    (`%Y` "reads" `12/1/10` as the year 10: such a fit is no fit, the `%y` one is named) and, given `today` (what
    a format is inferred on), with a 2-digit year (`%y`) in 1970…`today`, where POSIX and Excel put the same
    century."""
    parsed = values.str.to_datetime(fmt, strict=False, cache=False) if "%H" in fmt else values.str.to_date(fmt, strict=False)
    read = parsed.dt.date() if parsed.dtype != pl.Date else parsed
    plausible = read.is_between(date(1970, 1, 1), today) if today is not None and "%y" in fmt else ~_early(read)
    return (read.is_not_null() & plausible).fill_null(False)


def _day_month_swapped(fmt: str) -> str | None:
    """The format with day and month swapped (`%m/%d/%Y` <-> `%d/%m/%Y`); None for a year-first format, whose
    order no export reverses."""
    if fmt.startswith("%Y"):
        return None
    return fmt.replace("%d", "%DAY").replace("%m", "%d").replace("%DAY", "%m")


def infer_date_format(unread: pl.Series, written: int, today: date) -> tuple[str, str] | None:
    """(format, evidence) of the one common non-ISO format a file's own date values prove, else None.

    `unread`: the values of one date column that no ISO 8601 shape reads (nulls ignored); `written`: the
    column's values in all. Only a file written mostly in another format has one (an ISO file's odd value
    stays quarantined). The candidate is the format of COMMON_DATE_FORMATS reading most of a sample; it is
    inferred only when, over every value, (1) it reads more than half of `written`, (2) its day/month twin (`_day_month_swapped`) reads no value it does
    not and fails on at least one it reads — a day above 12 decides the order, as `12/13/2010` can only be
    month-first —, and (3) a 2-digit year (`%y`) only when every date read lies in 1970…`today` (where POSIX
    and Excel put the same century). Values it does not read stay unread (quarantined). The same kind of
    file-level evidence as `infer_decimal`; a declared `date_format` is never overridden."""
    values = unread.drop_nulls().str.strip_chars()
    if values.len() * 2 <= written:
        return None
    sample = values.head(SUGGESTION_SAMPLE)
    counts = {fmt: _reads(sample, fmt, today).sum() for fmt in COMMON_DATE_FORMATS}
    best = max(counts, key=counts.get)
    if counts[best] == 0:
        return None
    ok = _reads(values, best, today)
    if ok.sum() * 2 <= written:
        return None
    twin = _day_month_swapped(best)
    if twin is None:
        return best, f"{ok.sum():,} of {values.len():,} value(s) read"
    other = _reads(values, twin, today)
    if (other & ~ok).any():  # the other order reads values this one does not: the file cannot say which
        best, twin, ok, other = twin, best, other, ok
        if (other & ~ok).any():
            return None
    proof = ok & ~other
    if not proof.any():  # every day <= 12: the values cannot tell day-first from month-first
        return None
    example = values.filter(proof)[0]
    return best, (f"{ok.sum():,} of {values.len():,} value(s) read; {proof.sum():,} such as {example!r} can only be "
                  f"read this way round, and none only the other way ({twin!r})")


def date_hint(spec: SourceSpec | None, inferred: str | None = None) -> str:
    """The end of a quarantine reason for an unreadable date: what is accepted and how to declare more.
    `inferred`: the format the file's values proved (`infer_date_format`), if any."""
    if inferred is not None:
        return (f" matches neither ISO 8601 nor {inferred!r}, the format this file's other values prove (declare "
                "the file's date_format in sources.yaml if it is another)")
    if spec is not None and spec.date_format:
        return (f" matches neither the declared date_format {spec.date_format!r} ({spec.match!r} in sources.yaml) "
                "nor ISO 8601")
    return (" is not an ISO 8601 date or date-time (YYYY-MM-DD[ HH:MM[:SS]][Z|±HH:MM]); declare the file's format "
            "in sources.yaml (date_format; the drop's notes say which format reads these values, if one does)")


def early_year_reason(column: str, spec: SourceSpec | None) -> pl.Expr:
    """Reason rule for a value read with a year before `EARLIEST_YEAR` (`Timestamps.early_year`, in
    column `_year_<column>`): a year below 100 in a value without 4 digits in a row is a 2-digit year
    that `%Y` (or the ISO 8601 shapes) read as it stands; the hint says to declare `%y`. The value as
    written follows (`value_last`)."""
    where = (f"the declared date_format {spec.date_format!r} ({spec.match!r} in sources.yaml)"
             if spec is not None and spec.date_format else "ISO 8601")
    two_digit = (f"{column} has a 2-digit year, read as a year before 100 AD by {where} "
                 "(2-digit year read with %Y — declare %y in sources.yaml date_format)")
    other = (f"{column} has a year before {EARLIEST_YEAR} under {where} (a mistyped or shortened year?), "
             "never read as a date")
    short = (pl.col(f"_year_{column}") < 100) & ~pl.col(column).str.contains(r"\d{4}")
    return value_last(pl.when(short).then(pl.lit(two_digit)).otherwise(pl.lit(other)), column)


def infer_decimal(text: pl.Series, delimiter: str, spec: SourceSpec | None) -> str:
    """`,` when declared, or when every amount written with digits is an integer, a decimal-comma number
    (`1.234,50`, `12,50`), grouped by points (`1.234.567`) or ambiguous (`1.299`), and at least one is a
    decimal-comma number: in a file whose delimiter is not a comma (`;` from Excel's CSV, tab from its
    "Text (Tab delimited)" / "Unicode Text", `|`, in a German or French locale) any decimal comma; in a
    comma-delimited file only one written with both marks (`"1.185,85"`: never a decimal-point number), since
    a quoted `"12,50"` alone says nothing about the file's mark. Else `.` (a `12,50` then stays unread and is
    quarantined; `1,185.85` is read). An ambiguous value is never read (`number_expr`)."""
    if spec is not None and spec.decimal:
        return spec.decimal
    if delimiter == "," and not text.str.contains(",", literal=True).any():  # the common case: one cheap pass
        return "."
    # a value without a digit (`inf`, `Infinity`, stray text) says nothing about the decimal mark: it
    # is quarantined on its own and must not switch the whole column back to a decimal point
    present = text.drop_nulls().filter(text.drop_nulls().str.contains(r"\d"))
    comma = present.str.contains(DECIMAL_COMMA)
    fits = (comma | present.str.contains(INTEGER) | present.str.contains(AMBIGUOUS_IN_DECIMAL_COMMA)
            | present.str.contains(GROUPED[","]))
    evidence = present.str.contains(BOTH_MARKS_DECIMAL_COMMA) if delimiter == "," else comma
    return "," if evidence.any() and fits.all() else "."


def number_expr(column: str, decimal: str = ".", grouped: bool = False) -> pl.Expr:
    """Float64 of a text column; null where the text is not a finite number in this decimal mark
    (`inf`, `Infinity`, `1e309`, `nan` spellings, `12,50` with `.`) or is ambiguous (`1.299` with `,`,
    `1,185` with `.`: a thousands separator or the other decimal mark?). Grouping by the other mark is
    read where it cannot be the decimal mark (`GROUPED`): `1.234,50`, `1.234.567` with `,`; with `.` and
    `grouped` (the column holds a comma: one cheap pass decides) `1,185.85`, `12,345.00`, `1,234,567`."""
    text = pl.col(column)
    if decimal == ",":
        readable = text.str.contains(DECIMAL_COMMA) | text.str.contains(INTEGER) | text.str.contains(GROUPED[","])
        text = pl.when(readable).then(text.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True))
    elif grouped:
        text = pl.when(text.str.contains(GROUPED["."])).then(text.str.replace_all(",", "", literal=True)).otherwise(text)
    value = text.cast(pl.Float64, strict=False)
    return pl.when(value.is_finite()).then(value)


def value_last(rule: str | pl.Expr, column: str) -> pl.Expr:
    """`<rule>: '<value>'` — every reason names its rule first and the offending value (as written, at
    most 30 characters) last, so `parse.reason_rule` can strip the values and a whole column failing one
    rule groups into one rule in quarantine summaries."""
    rule = pl.lit(rule) if isinstance(rule, str) else rule
    return rule + pl.lit(": '") + pl.col(column).str.slice(0, 30) + pl.lit("'")


def number_hint(column: str, decimal: str) -> pl.Expr:
    """Reason for a present value `number_expr` could not read: the rule, then the value as written.
    The rule names what the value looks like, so the hint fits it: no digits at all, a currency sign
    or unit (`$89.90`, `12 EUR`), an ambiguous grouping (`1,185` where the decimal mark is `.`, `1.299` where
    it is `,`), separators not in groups of 3, a decimal comma in a file read with `.` (then: declare it)."""
    value = pl.col(column)
    infinite = value.cast(pl.Float64, strict=False)
    rule = (pl.when(infinite.is_infinite() | infinite.is_nan()).then(pl.lit(f"{column} is not a finite number"))
            .when(~value.str.contains(r"\d")).then(pl.lit(f"{column} is not a number"))
            .when(value.str.contains(r"[$€£¥]|\p{L}")).then(
                pl.lit(f"{column} is not a number (it holds a currency sign, unit or letters: export the number alone)")))
    if decimal == ",":
        rule = rule.when(value.str.contains(AMBIGUOUS_IN_DECIMAL_COMMA)).then(
            pl.lit(f"{column} is ambiguous in a decimal-comma file (thousands or decimal point?)")
        ).otherwise(pl.lit(f"{column} is not a decimal-comma number (1.234,50)"))
    else:
        rule = rule.when(value.str.contains(AMBIGUOUS["."])).then(
            pl.lit(f"{column} is ambiguous: one comma before 3 digits is a thousands separator (1185) or a decimal "
                   "comma (1.185) — export the amount with its decimals (1,185.00) or without separators")
        ).when(value.str.contains(r"^[+-]?\d+(,\d+)+(\.\d+)?$") & value.str.contains(r"\d,\d{3}")).then(
            pl.lit(f"{column} is not a number (its thousands separators are not in groups of 3 digits: 1,234.50)")
        ).when(value.str.contains(r"^\s*[+-]?\d*,\d+\s*$")).then(
            pl.lit(f"{column} is not a number (decimal point '.'; declare decimal: \",\" in sources.yaml for 12,50)")
        ).otherwise(pl.lit(f"{column} is not a number"))
    return value_last(rule, column)


def flag_expr(column: str, words: bool = True) -> pl.Expr:
    """`0/1`, `true/false`, `yes/no`, Excel's localised TRUE/FALSE words (any case) -> bool; anything else
    -> null. With `words=False` only `0`/`1` are compared: two comparisons, where lower-casing 10M digits
    would cost ~0.3 s."""
    value = pl.col(column)
    digits = pl.when(value == "1").then(True).when(value == "0").then(False)
    if not words:
        return digits
    word = value.str.to_lowercase()
    return digits.when(word.is_in(TRUE_WORDS)).then(True).when(word.is_in(FALSE_WORDS)).then(False)


# =HYPERLINK("<link>", "<display text>") with both arguments literal texts: `,` or `;` between them (a German or
# French sheet writes `;`), `""` a quote inside a text; any case, spaces allowed. Its value is the display text.
HYPERLINK = r'(?i)^=\s*HYPERLINK\(\s*"(?:[^"]|"")*"\s*[,;]\s*"((?:[^"]|"")*)"\s*\)$'
FORMULA_RULE = "is a formula cell (a spreadsheet formula, not its value: export the sheet's values)"


def formula_cells(table: pl.DataFrame, columns: list[str]) -> tuple[pl.DataFrame, tuple[str, ...], list[str]]:
    """(table with each hyperlink formula cell of `columns` replaced by its display text, the columns still
    holding a formula — text starting with `=` — whose rows the caller quarantines, notes).

    One `starts_with` pass per column (10M values: a few ms each); the pattern only runs on columns
    holding a formula. A display text is read for sure (it is the cell's value); other formulas
    (`=VLOOKUP(...)`, `=A2&"x"`, a hyperlink without literal display text) cannot be evaluated here."""
    columns = [c for c in columns if table[c].null_count() < table.height]  # an absent column holds none
    found = table.select(pl.col(c).str.starts_with("=").any() for c in columns).row(0, named=True) \
        if columns else {}
    formulas = [c for c in columns if found.get(c)]
    if not formulas:
        return table, (), []
    shown = {c: pl.col(c).str.extract(HYPERLINK, 1).str.replace_all('""', '"', literal=True) for c in formulas}
    counts = table.select(shown[c].is_not_null().sum().alias(c) for c in formulas).row(0, named=True)
    table = table.with_columns(pl.coalesce(shown[c], pl.col(c)).alias(c) for c in formulas if counts[c])
    still = tuple(c for c in formulas if table[c].str.starts_with("=").any())
    read = [f"{c} ({counts[c]:,})" for c in formulas if counts[c]]
    notes = [f"formula cells =HYPERLINK(\"<link>\",\"<text>\") read as their display text: "
             f"{', '.join(read)}"] if read else []
    return table, still, notes
