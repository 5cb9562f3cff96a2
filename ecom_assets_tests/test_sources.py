"""sources.yaml: declarations are read and validated; a broken file names its problem."""

import re
from datetime import date, datetime, timezone
from pathlib import Path

import polars as pl
import pytest

from ecom_assets.ingest.sources import ReturnRule, SourcesError, load_sources, spec_for
from ecom_assets.ingest.values import read_timestamps

RETAIL = """
- match: "Online_Retail*.csv"
  kind: sessions
  columns: {InvoiceNo: session_id, CustomerID: customer_id, InvoiceDate: session_date}
  date_format: "%m/%d/%Y %H:%M"
  timezone: Europe/London
  decimal: ","
  encoding: windows-1252
  null_markers: ["?", "#N/A"]
- match: "orders_*.csv"
  kind: orders
  return_when: {column: InvoiceNo, prefix: C}
"""


def write(data_dir, text: str) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "sources.yaml").write_text(text)


def test_no_file_means_no_declarations(tmp_path) -> None:
    assert load_sources(tmp_path) == []


def test_entries_are_parsed_and_matched_by_glob(tmp_path) -> None:
    """A UCI-style Online Retail export (US dates, London time, Excel's cp1252) declared in full."""
    write(tmp_path, RETAIL)
    specs = load_sources(tmp_path)
    retail = spec_for("online_retail_2011.CSV", specs)
    assert retail.kind == "sessions" and retail.columns["invoiceno"] == "session_id"
    assert retail.encoding == "cp1252" and retail.decimal == "," and retail.null_markers == ("?", "#N/A")
    assert retail.date_has_time and retail.timezone == "Europe/London"
    orders = spec_for("2024/orders_01.csv", specs)  # a file in a sub-folder of landing/: its name counts
    assert orders.return_when == ReturnRule("invoiceno", prefix="C")
    assert spec_for("2024-01.csv", specs) is None
    assert spec_for("Online_Retail_2011.csv.gz", specs) is retail  # the same export, compressed
    frame = pl.DataFrame({"invoiceno": ["C536379", "536380"]})
    assert frame.select(orders.return_when.expr()).to_series().to_list() == [True, False]


README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_examples_map_each_file_name_to_its_intended_entry(tmp_path) -> None:
    """Copying a README sources.yaml block must work: the first matching glob wins, so a broad
    `events_*.csv` listed before `events_ga4*.csv` would silently take the GA4 export."""
    text = README.read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    expected = dict(re.findall(r"`([\w.-]+\.csv)`\s*→\s*`([\w*.-]+)`", text))
    assert len(blocks) >= 2 and len(expected) >= 6
    entries = []  # the entry each block gives each name (None: no entry of the block matches it)
    for number, block in enumerate(blocks):
        write(tmp_path / str(number), block)
        specs = load_sources(tmp_path / str(number))
        entries.append({name: getattr(spec_for(name, specs), "match", None) for name in expected})
    for name, entry in expected.items():
        assert entry in [given[name] for given in entries], (name, [given[name] for given in entries])
        # the block that declares the intended entry gives it, not a broader glob listed earlier
        home = next(given for given in entries if entry in {e for e in given.values()})
        assert home[name] == entry, (name, home[name])


@pytest.mark.parametrize(("unit", "written"), [("epoch_s", "1699171200"), ("epoch_ms", "1699171200123"),
                                               ("epoch_us", "1699171200123456")])
def test_declared_epoch_timestamps_are_read_as_utc_instants(tmp_path, unit: str, written: str) -> None:
    """BigQuery's GA4 export writes `event_timestamp` as INT64 microseconds; other trackers write
    seconds or milliseconds. A value in the wrong unit (seconds written where microseconds are
    declared) lands outside 1971-2200 and stays unread, never rescaled by a guess."""
    write(tmp_path, f'- match: "events_ga4*.csv"\n  date_format: {unit}\n')
    spec = spec_for("events_ga4_2023.csv", load_sources(tmp_path))
    assert spec.date_has_time
    read = read_timestamps(pl.Series([written, "1.5e9", "20231105", "17x"]), spec)
    assert read.date.to_list() == [date(2023, 11, 5), None, None, None]
    assert read.instant[0].replace(microsecond=0) == datetime(2023, 11, 5, 8, 0, tzinfo=timezone.utc)
    assert read.naive_as_utc == 0


def test_declared_format_and_zone_read_naive_us_timestamps(tmp_path) -> None:
    """`12/1/2010 8:26` (Excel's US short date-time) is December 1st once declared; the London
    winter time is UTC+0, the summer one UTC+1."""
    write(tmp_path, RETAIL)
    spec = spec_for("Online_Retail.csv", load_sources(tmp_path))
    read = read_timestamps(pl.Series(["12/1/2010 8:26", "6/1/2011 8:26", "2011-06-01T08:26:00Z"]), spec)
    assert read.date.to_list() == [date(2010, 12, 1), date(2011, 6, 1), date(2011, 6, 1)]
    assert read.instant.to_list() == [datetime(2010, 12, 1, 8, 26, tzinfo=timezone.utc),
                                      datetime(2011, 6, 1, 7, 26, tzinfo=timezone.utc),
                                      datetime(2011, 6, 1, 8, 26, tzinfo=timezone.utc)]


def test_a_year_before_1900_is_never_a_date_or_instant(tmp_path) -> None:
    """`12/1/10 8:26` under the declared `%m/%d/%Y %H:%M` (polars' `%Y` takes `10`) and `1/2/999 8:00`
    give no date and no instant; the year they were read with is reported for the quarantine reason."""
    write(tmp_path, RETAIL)
    spec = spec_for("Online_Retail.csv", load_sources(tmp_path))
    read = read_timestamps(pl.Series(["12/1/10 8:26", "1/2/999 8:00", "12/1/2010 8:26", None]), spec)
    assert read.date.to_list() == [None, None, date(2010, 12, 1), None]
    assert read.instant.to_list() == [None, None, datetime(2010, 12, 1, 8, 26, tzinfo=timezone.utc), None]
    assert read.early_year.to_list() == [10, 999, None, None]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- match: '*.csv'\n  date_fromat: '%d/%m/%Y'\n", "unknown key(s) date_fromat"),
        ("- match: '*.csv'\n  kind: invoices\n", "kind 'invoices' is not one of"),
        ("- match: '*.csv'\n  timezone: Mars/Olympus\n", "not an IANA time zone"),
        ("- match: '*.csv'\n  decimal: ';'\n", "decimal must be"),
        ("- match: '*.csv'\n  encoding: klingon\n", "not a known encoding"),
        ("- match: '*.csv'\n  date_format: '%d/%m'\n", "does not give a full date"),
        ("- kind: sessions\n", "needs exactly one file-name glob"),
        ("- match: '*.csv'\n  kind: sessions\n  return_when: {column: status, prefix: C}\n", "applies to orders"),
        ("- match: [unclosed\n", "not readable YAML"),
        ("match: '*.csv'\n", "expected a list of entries"),
        ("- match: 'exports/*.csv'\n", "is a file-name glob"),
    ],
)
def test_an_invalid_file_names_the_entry_and_the_problem(tmp_path, text: str, problem: str) -> None:
    """Typos and impossible values are refused loudly rather than silently ignored."""
    write(tmp_path, text)
    with pytest.raises(SourcesError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        load_sources(tmp_path)


def test_a_declared_currency_is_an_iso_code_of_an_orders_export(tmp_path) -> None:
    write(tmp_path, '- match: "orders_*.csv"\n  currency: usd\n')
    assert load_sources(tmp_path)[0].currency == "USD"
    write(tmp_path, '- match: "orders_*.csv"\n  currency: dollars\n')
    with pytest.raises(SourcesError, match="three-letter ISO 4217 code"):
        load_sources(tmp_path)
    write(tmp_path, '- match: "customers_*.csv"\n  kind: customers\n  currency: EUR\n')
    with pytest.raises(SourcesError, match="currency applies to orders and events exports, not customers"):
        load_sources(tmp_path)
