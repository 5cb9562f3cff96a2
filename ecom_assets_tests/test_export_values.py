"""Values in real shop exports (DESIGN.md "Real exports"): each test is one quirk met in the wild,
with a small invented file; every case keeps rows_in = clean + quarantined + duplicate."""

import gzip
import json
from datetime import date, datetime, timezone

import dagster as dg
import polars as pl
import pytest

from ecom_assets.ingest.parse import check_header, parse_drop
from ecom_assets.ingest.sensor import landing_zone_sensor
from ecom_assets.ingest.sources import SourceSpec
from ecom_assets.settings import EcomSettings
from ecom_assets_tests.ingest_helpers import CUSTOMERS_HEADER, SESSIONS_HEADER, drop, ingest_and_clean, quarantine

TODAY = date(2026, 11, 24)
UTC = timezone.utc


def parse(text: str | bytes, kind: str = "sessions", name: str = "f.csv", spec: SourceSpec | None = None):
    raw = text.encode() if isinstance(text, str) else text
    parsed = parse_drop(raw, kind, f"{name}__abc", today=TODAY, spec=spec)
    a = parsed.accounting
    assert a["rows_in"] == a["clean"] + a["quarantined"] + a["duplicate"]
    return parsed


def reasons(parsed) -> dict[int, str]:
    return dict(zip(parsed.quarantine["line"], parsed.quarantine["reason"]))


# --- 2. dates and times ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "day", "start"),
    [
        ("2010-12-01 08:26:00", date(2010, 12, 1), datetime(2010, 12, 1, 8, 26, tzinfo=UTC)),  # UCI Online Retail
        ("2023-05-10T14:03:00Z", date(2023, 5, 10), datetime(2023, 5, 10, 14, 3, tzinfo=UTC)),  # Shopify API
        ("2023-05-10 14:03:00+02:00", date(2023, 5, 10), datetime(2023, 5, 10, 12, 3, tzinfo=UTC)),  # WooCommerce
        ("2023-05-10T23:30:00-0800", date(2023, 5, 10), datetime(2023, 5, 11, 7, 30, tzinfo=UTC)),  # date as written
        ("2019-10-01 00:00:00 UTC", date(2019, 10, 1), datetime(2019, 10, 1, tzinfo=UTC)),  # BigQuery / REES46
        ("2023-05-10T14:03:00.123456+05:30", date(2023, 5, 10), datetime(2023, 5, 10, 8, 33, 0, 123456, tzinfo=UTC)),
        ("2023-05-10 14:03", date(2023, 5, 10), datetime(2023, 5, 10, 14, 3, tzinfo=UTC)),  # Excel re-save, no seconds
    ],
)
def test_iso_8601_date_times_keep_the_written_date_and_the_utc_instant(value, day, start) -> None:
    """Purchase logs carry timestamps, not dates: every ISO 8601 spelling gives the calendar date
    written in the value as session_date and the instant (UTC) as session_start."""
    parsed = parse(f"{SESSIONS_HEADER}\nS1,C1,{value},Books,,1,9.5\nS2,C1,2024-01-02,Books,,0,0\n")
    assert parsed.quarantine.height == 0
    assert parsed.clean["session_date"].to_list() == [day, date(2024, 1, 2)]
    assert parsed.clean["session_start"].to_list() == [start, None]


def test_signup_date_time_keeps_the_customer() -> None:
    """A customer export with `created_at` timestamps used to quarantine every customer."""
    parsed = parse(f"{CUSTOMERS_HEADER}\nC1,30,F,Oslo,2023-05-10T14:03:00+02:00\nC2,41,M,Rome,2023-05-11 09:00:00 UTC\n",
                   "customers")
    assert parsed.clean["signup_date"].to_list() == [date(2023, 5, 10), date(2023, 5, 11)]


@pytest.mark.parametrize("rows", [
    ["12/1/2010 8:26"],  # December 1st in the US, January 12th in Europe: nothing in the file decides
    ["5/11/2025 08:26", "12/1/2025 09:00"],  # every day <= 12
    ["13/1/2024", "1/13/2024"],  # one value only day-first, another only month-first: the file has no one format
    ["May 10, 2023"],  # no common export format
])
def test_date_formats_the_file_cannot_prove_are_never_guessed(rows) -> None:
    """Quarantined, and the reason says how to declare the format."""
    parsed = parse(SESSIONS_HEADER + "".join(f'\nS{i},C1,"{value}",Books,,0,0' for i, value in enumerate(rows)) + "\n")
    assert parsed.accounting["quarantined"] == len(rows)
    reason = reasons(parsed)[2]
    # the rule first, the value last: a whole column written in one foreign format groups into one reason
    assert reason.startswith("session_date is not an ISO 8601 date") and reason.endswith(f": '{rows[0]}'")
    assert "date_format" in reason and "sources.yaml" in reason


@pytest.mark.parametrize(("rows", "fmt", "read"), [
    # UCI Online Retail as its CSV is shared: `12/13/2010` can only be month-first, so `12/1/2010` is December 1st
    (["12/1/2010 8:26", "12/13/2010 9:00"], "%m/%d/%Y %H:%M", [date(2010, 12, 1), date(2010, 12, 13)]),
    (["16/06/2021", "01/06/2021"], "%d/%m/%Y", [date(2021, 6, 16), date(2021, 6, 1)]),  # a European export
    (["31.01.2024 14:05", "02.01.2024 09:00"], "%d.%m.%Y %H:%M", [date(2024, 1, 31), date(2024, 1, 2)]),
    (["20230510", "20230511"], "%Y%m%d", [date(2023, 5, 10), date(2023, 5, 11)]),  # year first: one order only
    # Excel's short US date: a 2-digit year in 1970…today, where POSIX and Excel give the same century
    (["12/1/10 8:26", "1/13/11 9:00"], "%m/%d/%y %H:%M", [date(2010, 12, 1), date(2011, 1, 13)]),
])
def test_a_date_format_the_file_proves_is_read_and_said(rows, fmt, read) -> None:
    """Before, every such file was quarantined whole until sources.yaml declared its date_format (a UCI line-item
    export dropped with only its column names mapped lost every row)."""
    parsed = parse(SESSIONS_HEADER + "".join(f"\nS{i},C1,{value},Books,,0,0" for i, value in enumerate(rows)) + "\n")
    assert parsed.accounting["quarantined"] == 0, reasons(parsed)
    assert parsed.clean.sort("line")["session_date"].to_list() == read
    note = next(n for n in parsed.notes if n.startswith("session_date:"))
    assert f"read with date_format {fmt!r}, which this file's values prove" in note


def test_a_value_the_proved_format_does_not_read_is_quarantined_naming_it() -> None:
    parsed = parse(f"{SESSIONS_HEADER}\nS1,C1,12/1/2010 8:26,Books,,0,0\nS2,C1,12/13/2010 9:00,Books,,0,0\n"
                   "S3,C1,soon,Books,,0,0\n")
    assert parsed.clean.height == 2
    assert reasons(parsed)[4] == ("session_date matches neither ISO 8601 nor '%m/%d/%Y %H:%M', the format this file's "
                                  "other values prove (declare the file's date_format in sources.yaml if it is "
                                  "another): 'soon'")


def test_an_iso_file_s_odd_value_is_not_read_by_a_format_of_its_own() -> None:
    """One `16/06/2021` among ISO dates is a value written by hand, not the file's format: quarantined."""
    parsed = parse(f"{SESSIONS_HEADER}\nS1,C1,2021-06-15,Books,,0,0\nS2,C1,16/06/2021,Books,,0,0\n")
    assert parsed.clean.height == 1 and reasons(parsed)[3].startswith("session_date is not an ISO 8601 date")


def test_the_notes_suggest_a_date_format_when_the_values_cannot_decide_the_order() -> None:
    """A file whose days are all <= 12 names both orders and says the values cannot decide. Rows stay quarantined."""
    unclear = parse(f"{SESSIONS_HEADER}\nS1,C1,5/11/2025 08:26,Books,,0,0\nS2,C2,12/1/2025 09:00,Books,,0,0\n")
    assert unclear.accounting["quarantined"] == 2
    note = next(n for n in unclear.notes if n.startswith("session_date:"))
    assert '"%m/%d/%Y %H:%M"' in note and '"%d/%m/%Y %H:%M"' in note and "cannot tell day-first" in note
    assert not any(n.startswith("session_date:") for n in parse(f"{SESSIONS_HEADER}\nS1,C1,soon,Books,,0,0\n").notes)


def test_the_notes_say_when_a_file_mixes_day_first_and_month_first_dates() -> None:
    """Tryout: 70 % `25/01/2024` beside 30 % `09/29/2024` was quarantined (right) with empty notes, while the reason
    pointed at the notes for a format. No format reads them all: the note says so, with one example of each order."""
    days = ["25/01/2024", "14/02/2024", "05/03/2024", "30/03/2024", "18/04/2024", "22/05/2024", "13/06/2024"]
    months = ["09/29/2024", "10/15/2024", "11/20/2024"]
    parsed = parse(SESSIONS_HEADER + "".join(f"\nS{i},C{i},{value},Books,,0,0"
                                             for i, value in enumerate(days + months)) + "\n")
    assert parsed.clean.height == 0 and parsed.accounting["quarantined"] == 10
    note = next(n for n in parsed.notes if n.startswith("session_date:"))
    assert ("no one format reads them all: the file holds values only day-first '%d/%m/%Y' reads (such as "
            "'25/01/2024') and others only month-first '%m/%d/%Y' reads (such as '09/29/2024'), so it cannot be "
            "read without a declared date_format") in note


# one file per kind: line 2 carries a 2-digit year (`12/1/10 8:26`, the UCI Online Retail CSV as Excel
# writes it), line 3 the same instant with 4 digits; (kind, header, line with {t} for each date column)
TWO_DIGIT_YEAR_FILES = [
    ("customers", CUSTOMERS_HEADER, "C{n},30,F,Oslo,{t}"),
    ("sessions", SESSIONS_HEADER, "S{n},C1,{t},Books,,0,0"),
    ("orders", "order_id,customer_id,order_time,quantity,unit_price", "O{n},C1,{t},1,2.5"),
    ("events", "event_time,event_type,product_id,customer_id", "{t},view,P1,C{n}"),
    ("campaigns", "campaign_id,name,start_date,end_date", "K{n},Sale,{t},{t}"),
]


@pytest.mark.parametrize(("kind", "header", "line"), TWO_DIGIT_YEAR_FILES)
def test_a_2_digit_year_under_a_declared_four_digit_year_is_quarantined_never_dated(kind, header, line) -> None:
    """polars' `%Y` takes `10` as the year 10 AD: a UCI export with `12/1/10 8:26` under the README's
    `%m/%d/%Y %H:%M` was dated 0010-12-01 throughout. Every date column of every kind now quarantines
    such a value naming the rule and the fix; the 4-digit line of the same file is read as before."""
    spec = SourceSpec(f"{kind}_retail*.csv", date_format="%m/%d/%Y %H:%M")
    rows = [line.format(n=n, t=t) for n, t in ((1, "12/1/10 8:26"), (2, "12/1/2010 8:26"))]
    parsed = parse("\n".join([header, *rows]) + "\n", kind, spec=spec)
    assert parsed.quarantine["line"].to_list() == [2]
    reason = reasons(parsed)[2]
    assert "2-digit year read with %Y" in reason and "declare %y" in reason and f"'{kind}_retail*.csv'" in reason
    assert reason.endswith(": '12/1/10 8:26'") and "not an ISO 8601" not in reason and "matches neither" not in reason
    dated = [c for c in parsed.clean.columns if parsed.clean[c].dtype == pl.Date]
    assert dated and all(parsed.clean[c].to_list() == [date(2010, 12, 1)] for c in dated)
    assert any("read with a year before 1900" in n and "'12/1/10 8:26'" in n for n in parsed.notes), parsed.notes


def test_an_iso_shaped_short_year_and_year_before_1900_are_quarantined_and_a_declared_y_reads_2_digits() -> None:
    """Without a declaration, `10-12-01` fitted the ISO reader's `%Y-%m-%d` (year 10) and `0010-12-01` /
    `0999-12-01 08:00:00` are ISO in shape but no shop's date: all three quarantined, none dated; a
    declared `%y-%m-%d` reads `10-12-01` as 2010-12-01 even beside a 10-character ISO date."""
    rows = ["10-12-01", "0010-12-01", "0999-12-01 08:00:00", "2010-12-01"]
    text = SESSIONS_HEADER + "\n" + "".join(f"S{i},C1,{v},Books,,0,0\n" for i, v in enumerate(rows))
    parsed = parse(text)
    assert parsed.clean["session_date"].to_list() == [date(2010, 12, 1)]
    why = reasons(parsed)
    assert "2-digit year read with %Y" in why[2] and why[2].endswith(": '10-12-01'")
    assert all("year before 1900" in why[n] and "2-digit" not in why[n] for n in (3, 4))
    declared = parse(text, spec=SourceSpec("f*", date_format="%y-%m-%d"))
    assert declared.clean["session_date"].to_list() == [date(2010, 12, 1)] * 2
    assert declared.quarantine["line"].to_list() == [3, 4]


def test_the_suggested_date_format_for_2_digit_years_is_the_y_one() -> None:
    """Undeclared `12/1/10 8:26` used to fit `%m/%d/%Y %H:%M` (year 10) as well as `%m/%d/%y %H:%M`, and
    the note named the `%Y` one first; a fit that gives a year before 1900 is no fit. Days all <= 12: the
    order is not proved, so the rows stay quarantined and the note suggests."""
    parsed = parse(f"{SESSIONS_HEADER}\nS1,C1,12/1/10 8:26,Books,,0,0\nS2,C1,1/12/11 9:00,Books,,0,0\n")
    assert parsed.accounting["quarantined"] == 2
    note = next(n for n in parsed.notes if n.startswith("session_date:"))
    assert '"%m/%d/%y %H:%M"' in note and "%Y" not in note


def test_a_2_digit_year_whose_century_conventions_disagree_is_never_read() -> None:
    """`1/13/45`: 2045 to POSIX (in the future), 1945 to Excel: no century is sure, so no format is inferred."""
    parsed = parse(f"{SESSIONS_HEADER}\nS1,C1,12/1/45,Books,,0,0\nS2,C1,1/13/46,Books,,0,0\n")
    assert parsed.accounting["quarantined"] == 2


def test_declared_date_format_and_timezone_read_an_excel_export(data_dir, instance, resources) -> None:
    """UCI Online Retail as Excel saves it (`12/1/2010 8:26`, London time) reads once declared."""
    (data_dir / "sources.yaml").write_text(
        '- match: "sessions_retail*.csv"\n  date_format: "%m/%d/%Y %H:%M"\n  timezone: Europe/London\n')
    drop(data_dir, "sessions_retail.csv", f"{SESSIONS_HEADER}\nS1,C1,12/1/2010 8:26,Books,,1,9.5\n"
                                          f"S2,C1,6/1/2011 8:26,Books,,1,3\nS3,C1,2011-06-02,Books,,0,0\n")
    sessions = ingest_and_clean(data_dir, instance, resources)["sessions"].sort("session_id")
    assert sessions["session_date"].to_list() == [date(2010, 12, 1), date(2011, 6, 1), date(2011, 6, 2)]
    assert sessions["session_start"].to_list() == [datetime(2010, 12, 1, 8, 26, tzinfo=UTC),
                                                   datetime(2011, 6, 1, 7, 26, tzinfo=UTC), None]


# --- 3. sources.yaml ------------------------------------------------------------------------------

def test_declared_kind_and_column_names_ingest_a_shop_export(data_dir, instance, resources) -> None:
    """A platform export named `export_2024-05.csv` with its own header names: `kind` and `columns`
    in sources.yaml make it a sessions drop; the partition metadata names the entry."""
    (data_dir / "sources.yaml").write_text(
        "- match: 'export_*.csv'\n  kind: sessions\n"
        "  columns: {Order ID: session_id, Customer: customer_id, Created at: session_date, Paid: purchase_made,"
        " Total: purchase_amount, Category: product_viewed, Time on site: browsing_time_sec}\n")
    drop(data_dir, "export_2024-05.csv", "Order ID,Customer,Created at,Category,Time on site,Paid,Total\n"
                                         "1001,C1,2024-05-02T10:00:00Z,Books,,true,19.99\n")
    out = ingest_and_clean(data_dir, instance, resources)
    assert out["sessions"]["session_id"].to_list() == ["1001"]
    assert out["sessions"]["purchase_made"].to_list() == [True]
    meta = instance.get_latest_materialization_event(dg.AssetKey("raw_sessions")).asset_materialization
    assert "export_*.csv" in meta.metadata["notes"].value


def test_invalid_sources_yaml_holds_drops_and_warns_without_crashing(data_dir, instance) -> None:
    """A typo in sources.yaml must not ingest files under wrong assumptions nor stop the sensor:
    the tick names the problem, files wait, and are ingested once it is fixed."""
    (data_dir / "sources.yaml").write_text("- match: '*.csv'\n  date_fromat: '%d/%m/%Y'\n")
    drop(data_dir, "sessions_1.csv", f"{SESSIONS_HEADER}\nS1,C1,2024-01-02,Books,,0,0\n")
    settings = EcomSettings(data_dir=str(data_dir))
    context = dg.build_sensor_context(instance=instance, resources={"settings": settings},
                                      cursor=json.dumps({"seen": {"sessions_1.csv": []}}))
    result = landing_zone_sensor(context)
    assert not result.run_requests and "date_fromat" in result.skip_reason.skip_message
    assert (data_dir / "landing" / "sessions_1.csv").exists()
    # a health signal once per new problem: an observation on landing_rejects and an alert line
    assert [e.metadata["file"].value for e in result.asset_events] == ["sources.yaml"]
    alerts = (data_dir / "alerts" / "alerts.jsonl").read_text().splitlines()
    assert len(alerts) == 1 and json.loads(alerts[0])["alert"] == "sources_yaml_invalid"
    same = landing_zone_sensor(dg.build_sensor_context(instance=instance, resources={"settings": settings},
                                                       cursor=result.cursor))
    assert not same.asset_events and len((data_dir / "alerts" / "alerts.jsonl").read_text().splitlines()) == 1
    (data_dir / "sources.yaml").write_text("- match: '*.csv'\n  date_format: '%d/%m/%Y'\n")
    again = landing_zone_sensor(dg.build_sensor_context(instance=instance, resources={"settings": settings},
                                                        cursor=result.cursor))
    assert len(again.run_requests) == 1


# --- 4. numbers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["inf", "Infinity", "-inf", "1e309", "+NAN"])
def test_non_finite_numbers_are_quarantined(value) -> None:
    """`inf` from a spreadsheet division, `1e309` overflowing a double: never an amount."""
    parsed = parse(f"{SESSIONS_HEADER}\nS1,C1,2024-01-02,Books,60,1,{value}\nS2,C1,2024-01-02,Books,{value},0,0\n")
    assert parsed.clean.height == 0
    assert f"purchase_amount is not a finite number: '{value}'" in reasons(parsed)[2]
    assert f"browsing_time_sec is not a finite number: '{value}'" in reasons(parsed)[3]


def test_decimal_comma_inferred_in_a_semicolon_file_and_ambiguous_value_quarantined() -> None:
    """A German Excel export: `;` delimiter, `1.234,50`. `1.299` there means 1,299 or 1.299 —
    quarantined, never reinterpreted."""
    rows = ["S1;C1;2024-01-02;Books;60;1;1.234,50", "S2;C1;2024-01-02;Books;60;1;12,50", "S3;C1;2024-01-02;Books;60;0;0",
            "S4;C1;2024-01-02;Books;60;1;1.299"]
    parsed = parse(SESSIONS_HEADER.replace(",", ";") + "\n" + "\n".join(rows) + "\n")
    assert parsed.clean["purchase_amount"].to_list() == [1234.5, 12.5, 0.0]
    assert "purchase_amount is ambiguous in a decimal-comma file (thousands or decimal point?): '1.299'" == reasons(parsed)[5]
    assert any("decimal comma inferred for purchase_amount" in n for n in parsed.notes)


@pytest.mark.parametrize(("delimiter", "encoding"), [("\t", "utf-8"), ("\t", "utf-16"), ("|", "utf-8")])
def test_decimal_comma_inferred_in_tab_and_pipe_files_by_the_same_rules(delimiter: str, encoding: str) -> None:
    """Excel's "Text (Tab delimited)" (and "Unicode Text": UTF-16 with a BOM) in a German or French
    locale writes `12,50` between tabs; the mark is inferred exactly as for `;` files: every amount
    with digits fits it, and `1.299` stays ambiguous and is quarantined, never guessed."""
    rows = ["S1,C1,2024-01-02,Books,60,1,1.234,50", "S2,C1,2024-01-02,Books,60,1,12,50",
            "S3,C1,2024-01-02,Books,60,0,0", "S4,C1,2024-01-02,Books,60,1,1.299"]
    columns = [row.split(",", 6) for row in rows]  # the amount keeps its comma
    text = "\n".join([SESSIONS_HEADER.replace(",", delimiter), *[delimiter.join(c) for c in columns]]) + "\n"
    parsed = parse(text.encode(encoding))
    assert parsed.clean["purchase_amount"].to_list() == [1234.5, 12.5, 0.0]
    assert reasons(parsed) == {
        5: "purchase_amount is ambiguous in a decimal-comma file (thousands or decimal point?): '1.299'"}
    assert any(n.startswith(f"decimal comma inferred for purchase_amount ({delimiter!r} delimiter")
               for n in parsed.notes)
    # one amount that fits neither mark keeps the file on decimal points: nothing is guessed
    mixed = parse((text + delimiter.join(["S5", "C1", "2024-01-02", "Books", "60", "1", "3.5"]) + "\n").encode(encoding))
    assert mixed.clean["purchase_amount"].to_list() == [0.0, 1.299, 3.5]
    assert set(reasons(mixed)) == {2, 3}


def test_one_infinite_amount_does_not_switch_a_decimal_comma_file_back_to_points() -> None:
    """A German Excel export with one `inf` (a broken formula) among `12,50` amounts: the `inf` has no
    digit, says nothing about the decimal mark and is quarantined as not finite; every other amount
    is still read with its decimal comma (the tryout saw 95 good rows quarantined instead)."""
    rows = ["S1;C1;2024-01-02;Books;60;1;115,17", "S2;C1;2024-01-02;Books;60;1;inf", "S3;C1;2024-01-02;Books;60;1;1.234,50",
            "S4;C1;2024-01-02;Books;60;1;Infinity"]
    parsed = parse(SESSIONS_HEADER.replace(",", ";") + "\n" + "\n".join(rows) + "\n")
    assert parsed.clean["purchase_amount"].to_list() == [115.17, 1234.5]
    assert reasons(parsed)[3] == "purchase_amount is not a finite number: 'inf'"
    assert reasons(parsed)[5] == "purchase_amount is not a finite number: 'Infinity'"
    assert parsed.rows_in == parsed.clean.height + parsed.quarantine.height + parsed.duplicates


def test_decimal_comma_is_used_only_when_declared_or_unambiguous() -> None:
    """A `,`-delimited file with a quoted `12,50`: nothing declares a decimal comma, so it is not
    read as 12.5; declared, it is."""
    text = f'{SESSIONS_HEADER}\nS1,C1,2024-01-02,Books,60,1,"12,50"\n'
    reason = reasons(parse(text))[2]
    assert reason.startswith("purchase_amount is not a number") and reason.endswith(": '12,50'")
    declared = parse(text, spec=SourceSpec("f.csv", decimal=","))
    assert declared.clean["purchase_amount"].to_list() == [12.5]


# --- 5. missing values ----------------------------------------------------------------------------

@pytest.mark.parametrize("marker", ["NULL", "null", "N/A", "NA", "n/a", "None", "nan", "NaN", "-"])
def test_missing_value_markers_mean_missing_in_every_column(marker) -> None:
    """Database dumps write NULL, pandas writes NaN, people write N/A or -: all mean 'no value'."""
    parsed = parse(f"{CUSTOMERS_HEADER}\n{marker},30,F,Oslo,2024-01-01\nC2,{marker},{marker},{marker},{marker}\n",
                   "customers")
    # the rule first; then the marker as written (the quarantine keeps it too)
    assert reasons(parsed)[2] == f"empty customer_id; customer_id is a missing-value marker, read as missing: '{marker}'"
    assert parsed.quarantine["customer_id"].to_list() == [marker]
    row = parsed.clean.row(0, named=True)
    assert (row["customer_id"], row["age"], row["gender"], row["location"], row["signup_date"]) == \
        ("C2", None, None, None, None) and not row["age_out_of_range"]
    sessions = parse(f"{SESSIONS_HEADER}\nS1,C1,2024-01-02,{marker},{marker},0,{marker}\n")
    assert sessions.clean.row(0, named=True)["product_viewed"] == "unknown"
    assert sessions.clean.row(0, named=True)["browsing_time_sec"] is None


def test_declared_null_markers_add_to_the_built_in_ones() -> None:
    """A shop writes `?` for an unknown customer: declared, it is missing (and the row quarantined)."""
    parsed = parse(f"{SESSIONS_HEADER}\nS1,?,2024-01-02,Books,60,0,0\n", spec=SourceSpec("f.csv", null_markers=("?",)))
    assert reasons(parsed)[2] == "empty customer_id; customer_id is a missing-value marker, read as missing: '?'"


# --- 6. record structure --------------------------------------------------------------------------

def test_rows_with_another_field_count_are_quarantined_with_their_start_line() -> None:
    """An unquoted `1,234.50` adds a field (the amount must not become 1.0); a short row lost one;
    a quoted product name spanning two lines keeps every later line number physical."""
    text = (f"{SESSIONS_HEADER}\n"
            'S1,C1,2024-01-02,"Books\nand more",60,1,9.5\n'  # lines 2-3
            "S2,C1,2024-01-02,Books,60,1,1,234.50\n"  # line 4
            "S3,C1,2024-01-02,Books,60,1\n"  # line 5
            "S4,C1,2024-01-02,Books,60,0,x\n")  # line 6
    parsed = parse(text)
    assert parsed.clean["line"].to_list() == [2]
    assert parsed.clean["product_viewed"].to_list() == ["Books\nand more"]
    got = reasons(parsed)
    assert got[4] == "field count differs from the header (7 fields): 8"
    assert got[5] == "field count differs from the header (7 fields): 6"
    assert got[6].startswith("purchase_amount is not a number") and got[6].endswith(": 'x'")


def test_excel_trailing_empty_header_cells_are_unnamed_columns() -> None:
    """Excel keeps formatted empty columns: `…,purchase_amount,,` and rows ending `,,` (or, after a
    hand edit, without them: nothing shifts, so those rows are kept too); a row short of a named
    column is still ragged."""
    parsed = parse(f"{SESSIONS_HEADER},,\nS1,C1,2024-01-02,Books,60,1,9.5,,\nS2,C1,2024-01-02,Books,60,1,9.5\n"
                   "S3,C1,2024-01-02,Books,60,0\n")
    assert parsed.clean["purchase_amount"].to_list() == [9.5, 9.5]
    assert reasons(parsed) == {4: "field count differs from the header (9 fields): 6"}
    assert "2 unnamed column(s) (empty header cells) ignored" in parsed.notes


def test_a_large_ragged_file_gets_exact_fates_from_its_path(tmp_path) -> None:
    """Files above HEAD_BYTES are read by polars from the path only when provably regular; one
    extra field deep in a large export sends it through the exact reader, same fates."""
    rows = [f"S{i},C{i % 97},2024-01-{1 + i % 28:02d},Books,{i % 300},1,9.5" for i in range(3000)]
    rows[1500] = "S1500,C1,2024-01-02,Books,60,1,1,234.50"
    path = tmp_path / "sessions.csv"
    path.write_text(SESSIONS_HEADER + "\n" + "\n".join(rows) + "\n")
    parsed = parse_drop(path, "sessions", "sessions.csv__abc", today=TODAY)
    assert reasons(parsed) == {1502: "field count differs from the header (7 fields): 8"} and parsed.clean.height == 2999


@pytest.mark.parametrize("rows", [10, 3000], ids=["small", "above HEAD_BYTES"])
@pytest.mark.parametrize(("at", "ending"), [(5, "\n"), (-1, "\n"), (-1, "")],
                         ids=["mid-file", "last line", "last line without line break"])
def test_one_extra_empty_trailing_field_is_a_field_count_mismatch_at_any_size(tmp_path, rows: int, at: int,
                                                                                ending: str) -> None:
    """A hand-edited export: one row ends `…,0,0,` (an extra, empty field) under a 7-column header.
    Polars reads an empty extra field exactly like an absent one, so the row must be caught however
    the file is read (from its bytes, or from its path above HEAD_BYTES)."""
    lines = [f"S{i},C{i % 97},2024-01-{1 + i % 28:02d},Books,{i % 300},0,0" for i in range(rows)]
    lines[at] += ","
    text = SESSIONS_HEADER + "\n" + "\n".join(lines) + ending
    path = tmp_path / "sessions.csv"
    path.write_text(text)
    line = 2 + (at % rows)
    for source in (text.encode(), path):
        parsed = parse_drop(source, "sessions", "sessions.csv__abc", today=TODAY)
        assert reasons(parsed) == {line: "field count differs from the header (7 fields): 8"}, type(source)
        assert parsed.clean.height == rows - 1


# --- 7. encodings ---------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_excel_unicode_text_utf16_with_bom_is_read(codec, tmp_path) -> None:
    """Excel's "Unicode Text" save: UTF-16 with a byte-order mark, tab-separated; the sensor's
    header check reads it too (its first 64 KiB may end mid-character)."""
    text = (SESSIONS_HEADER + "\r\nS1,C1,2024-01-02,Kid’s Toys,60,1,9.5\r\n").replace(",", "\t")
    bom = b"\xff\xfe" if codec == "utf-16-le" else b"\xfe\xff"
    (tmp_path / "sessions.txt").write_bytes(bom + text.encode(codec) * 3000)
    check_header(tmp_path / "sessions.txt", "sessions")
    parsed = parse(bom + text.encode(codec))
    assert parsed.clean["product_viewed"].to_list() == ["Kid’s Toys"]
    assert parsed.encoding == codec and "delimiter '\\t'" in parsed.notes


def test_no_c1_control_character_reaches_a_clean_table() -> None:
    """A file once decoded as latin-1 and saved as UTF-8 carries U+0092 where `’` was: that row is
    quarantined (it would split `Kid’s Toys` in two), the others are kept."""
    parsed = parse(f"{SESSIONS_HEADER}\nS1,C1,2024-01-02,Kid\u0092s Toys,60,0,0\nS2,C1,2024-01-02,Kid’s Toys,60,0,0\n")
    assert parsed.clean["product_viewed"].to_list() == ["Kid’s Toys"]
    assert "product_viewed holds a C1 control character" in reasons(parsed)[2]


def test_undefined_windows_1252_bytes_are_quarantined_not_guessed() -> None:
    """0x81 has no meaning in Windows-1252: the row holding it is quarantined, the rest read."""
    raw = (f"{SESSIONS_HEADER}\nS1,C1,2024-01-02,Caf\xe9,60,0,0\n").encode("cp1252") + b"S2,C1,2024-01-02,X\x81,60,0,0\n"
    parsed = parse(raw)
    assert parsed.clean["product_viewed"].to_list() == ["Café"] and parsed.encoding == "cp1252"
    assert "C1 control character" in reasons(parsed)[3]


def test_declared_encoding_is_used(data_dir, instance, resources) -> None:
    """A Mac Roman export would be valid-looking garbage under any guess: declared, it reads; the
    partition metadata names the encoding."""
    (data_dir / "sources.yaml").write_text("- match: 'customers_mac.csv'\n  encoding: mac_roman\n")
    drop(data_dir, "customers_mac.csv", (CUSTOMERS_HEADER + "\nC1,30,F,Zürich,2024-01-01\n").encode("mac_roman"))
    out = ingest_and_clean(data_dir, instance, resources)
    assert out["customers"]["location"].to_list() == ["Zürich"]
    meta = instance.get_latest_materialization_event(dg.AssetKey("raw_customers")).asset_materialization
    assert meta.metadata["encoding"].value == "mac-roman"


# --- 10. compressed drops -------------------------------------------------------------------------

def test_gzipped_csv_is_read_like_csv(data_dir, instance, resources) -> None:
    """Exports downloaded from a warehouse often arrive as `.csv.gz`; the kind comes from the name
    without `.gz`."""
    drop(data_dir, "sessions_2024.csv.gz", gzip.compress(f"{SESSIONS_HEADER}\nS1,C1,2024-01-02,Books,60,1,9.5\n".encode()))
    out = ingest_and_clean(data_dir, instance, resources)
    assert out["sessions"]["session_id"].to_list() == ["S1"] and quarantine(data_dir).height == 0


# --- 13. flags ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("yes", "no"), [("1", "0"), ("true", "false"), ("TRUE", "False"), ("yes", "no"), ("Yes", "NO"),
                                         ("WAHR", "FALSCH"), ("vrai", "faux"), ("VERDADERO", "FALSO"), ("Waar", "Onwaar")])
def test_flags_accept_words_in_any_case(yes, no) -> None:
    """Shopify and WooCommerce write true/false, survey tools yes/no, a German or French Excel WAHR/FALSCH, VRAI/FAUX."""
    header = SESSIONS_HEADER + ",added_to_cart"
    parsed = parse(f"{header}\nS1,C1,2024-01-02,Books,60,{yes},9.5,{yes}\nS2,C1,2024-01-02,Books,60,{no},,{no}\n"
                   f"S3,C1,2024-01-02,Books,60,maybe,,\n")
    assert parsed.clean["purchase_made"].to_list() == [True, False]
    assert parsed.clean["added_to_cart"].to_list() == [True, False]
    assert "purchase_made must be 0 or 1 (or true/false, yes/no): 'maybe'" == reasons(parsed)[4]


def test_a_c1_character_deep_in_a_large_file_is_found_from_its_path(tmp_path) -> None:
    """The path route rules C1 out with one byte search over the file; when the byte is there
    (row 2,500 of a large export), the row is quarantined as on the bytes route."""
    rows = [f"S{i},C{i % 97},2024-01-{1 + i % 28:02d},Books,{i % 300},1,9.5" for i in range(3000)]
    rows[2500] = "S2500,C1,2024-01-02,Kid\u0092s Toys,60,1,9.5"
    path = tmp_path / "sessions.csv"
    path.write_text(SESSIONS_HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    parsed = parse_drop(path, "sessions", "sessions.csv__abc", today=TODAY)
    assert list(reasons(parsed)) == [2502] and "C1 control character" in reasons(parsed)[2502]


def test_padded_missing_markers_are_missing() -> None:
    """Fixed-width-style exports pad values: ` NULL ` is as missing as `NULL`."""
    parsed = parse(f"{CUSTOMERS_HEADER}\nC1, 30 , NULL ,Oslo, N/A \n", "customers")
    row = parsed.clean.row(0, named=True)
    assert (row["age"], row["gender"], row["signup_date"]) == (30, None, None)


def test_integer_customer_ids_written_as_decimals_are_read_as_the_integers() -> None:
    """UCI Online Retail saved by pandas writes CustomerID `17850.0` (an integer column holding missing values
    becomes floats); the shop's own export writes `17850`. Kept as written, one customer was two."""
    header = "order_id,customer_id,order_time,quantity,unit_price"
    parsed = parse(f"{header}\n536365,17850.0,2010-12-01 08:26,6,2.55\n536366,,2010-12-01 08:28,6,1.85\n"
                   "536367,13047.0,2010-12-01 08:34,32,1.69\n", "orders")
    assert sorted(parsed.clean["customer_id"].to_list()) == ["13047", "17850"]
    assert any(n.startswith("customer_id: every id is an integer written with a zero decimal part (e.g. '17850.0'")
               for n in parsed.notes), parsed.notes
    mixed = parse(f"{header}\n1,17850.0,2010-12-01 08:26,6,2.55\n2,A-17,2010-12-01 08:28,6,1.85\n", "orders")
    assert sorted(mixed.clean["customer_id"].to_list()) == ["17850.0", "A-17"]  # not every id: kept as written
