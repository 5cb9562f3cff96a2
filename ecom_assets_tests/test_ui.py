"""The UI as the on-call engineer sees it: a real `dagster-webserver` over a materialized sample,
queried through GraphQL and opened in headless Chromium (Debian `chromium` + `chromium-driver`).

Screenshots land in pytest's tmp dir; set ECOM_SCREENSHOT_DIR to keep them (the README's
`docs/img/lineage.png` is refreshed that way).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import dagster as dg

from ecom_assets.cli import main
from ecom_assets.definitions import defs
from ecom_assets.jobs import DAILY_REFRESH_JOB, DROP_REFRESH_JOB
from ecom_assets.pipeline import refresh
from ecom_assets.settings import DATA_DIR_ENV

pytestmark = pytest.mark.browser
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--window-size=1700,1200"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    """A generated sample ingested and built by the CLI, then the webserver on a free port."""
    data_dir = tmp_path_factory.mktemp("ui") / "data"
    with pytest.MonkeyPatch.context() as patch:  # the CLI reads both; keep them module-local
        patch.setenv(DATA_DIR_ENV, str(data_dir))
        patch.setenv("DAGSTER_HOME", str(data_dir / ".dagster"))
        env = dict(os.environ)
        # --drift: one later, shifted sessions drop, whose profile check fails (WARN)
        assert main(["generate", "--out", str(data_dir / "landing"), "--customers", "1500", "--days", "400",
                     "--seed", "3", "--drift"]) == 0
        assert main(["run", "--data-dir", str(data_dir), "--no-automation"]) == 0
        # the runs the sensor and the schedule would launch, so that the Runs page lists every kind
        with dg.DagsterInstance.get() as instance:
            for job in (DROP_REFRESH_JOB, DAILY_REFRESH_JOB):
                assert refresh(instance, job).success
    port = _free_port()
    log = (data_dir / "webserver.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-webserver")), "-m", "ecom_assets.definitions",
         "-h", "127.0.0.1", "-p", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert process.poll() is None, (data_dir / "webserver.log").read_text()[-3000:]
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        else:
            pytest.fail("dagster-webserver did not answer within 90 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_graphql_lists_every_asset_with_its_latest_materialization(webserver) -> None:
    query = """{ assetNodes { assetKey { path } groupName
                 assetMaterializations(limit: 1) { timestamp runId } } }"""
    response = requests.post(f"{webserver}/graphql", json={"query": query}, timeout=30)
    response.raise_for_status()
    nodes = {"/".join(n["assetKey"]["path"]): n for n in response.json()["data"]["assetNodes"]}
    defined = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert set(nodes) == defined
    # the generated sample has no orders or events export: those ingest partitions never exist
    no_such_drop = {"raw_orders", "raw_order_sessions", "raw_events", "raw_event_sessions"}
    unbuilt = {name for name, node in nodes.items() if not node["assetMaterializations"]} - no_such_drop
    assert not unbuilt, f"never materialized: {sorted(unbuilt)}"
    assert {nodes[name]["groupName"] for name in nodes} == {"ingest", "clean", "features", "churn", "insights",
                                                           "monitoring"}


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("Debian chromium / chromium-driver are not installed (the CI script installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


DIALOG = "Join the Dagster community"


def _page_text_when(driver, url: str, *needles: str, timeout: float = 60) -> str:
    """Open `url` and wait until the rendered page contains every needle (the UI loads over GraphQL)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, timeout).until(
        lambda d: all(n in d.find_element(By.TAG_NAME, "body").text for n in needles))
    time.sleep(1.5)  # let the graph layout settle (and the first-visit dialog appear) before the screenshot
    for skip in driver.find_elements(By.XPATH, "//button[normalize-space()='Skip']"):
        skip.click()  # the first-visit newsletter dialog would cover the screenshot
    WebDriverWait(driver, 10).until(lambda d: DIALOG not in d.find_element(By.TAG_NAME, "body").text)
    return driver.find_element(By.TAG_NAME, "body").text


def _keep(driver, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    driver.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank frame
    if keep := os.environ.get("ECOM_SCREENSHOT_DIR"):
        shutil.copyfile(shot, Path(keep) / name)
    return shot


def test_lineage_graph_shows_the_pipeline(webserver, browser, tmp_path) -> None:
    text = _page_text_when(
        browser, f"{webserver}/assets/churn_model?view=lineage&lineageScope=neighbors&lineageDepth=3",
        "clean_sessions", "customer_features", "churn_training_set", "churn_model", "churn_predictions",
    )
    assert "feature_drift_report" in text or "model_performance" in text
    _keep(browser, tmp_path, "lineage.png")


def test_asset_page_shows_checks_and_row_accounting(webserver, browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    text = _page_text_when(browser, f"{webserver}/assets/clean_sessions", "rows_from_drops", "Columns")
    for column in ("session_id", "before_signup", "source_file"):
        assert column in text
    _keep(browser, tmp_path, "asset_clean_sessions.png")
    listed = _page_text_when(browser, f"{webserver}/assets/clean_sessions?view=checks",
                             "rows_accounted_for", "every_drop_accounted", "Succeeded")
    assert "sessions_of_u" in listed  # the third check (its name is shortened in the list)
    browser.find_element(By.XPATH, "//*[normalize-space()='rows_accounted_for']").click()
    WebDriverWait(browser, 30).until(lambda d: "rows from the drops =" in d.find_element(By.TAG_NAME, "body").text)
    checks = browser.find_element(By.TAG_NAME, "body").text
    assert "Passed" in checks and "Blocking" in checks
    _keep(browser, tmp_path, "asset_checks.png")


def test_runs_page_names_every_kind_of_run(webserver, browser, tmp_path) -> None:
    text = _page_text_when(browser, f"{webserver}/runs", "build_all_job", DROP_REFRESH_JOB, DAILY_REFRESH_JOB,
                           "ingest_sessions_job", "ingest_customers_job")
    assert "__ephemeral_asset_job__" not in text and "__ASSET_JOB" not in text
    _keep(browser, tmp_path, "runs.png")


def test_shifted_drop_fails_its_profile_check(webserver, browser, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _page_text_when(browser, f"{webserver}/assets/sessions_drop_profile?view=checks", "drop_not_shifted")
    browser.find_element(By.XPATH, "//*[normalize-space()='drop_not_shifted']").click()
    WebDriverWait(browser, 30).until(lambda d: "browsing_time_sec PSI" in d.find_element(By.TAG_NAME, "body").text)
    text = browser.find_element(By.TAG_NAME, "body").text
    assert "Failed" in text or "Warning" in text
    _keep(browser, tmp_path, "drop_check.png")


def test_descriptions_render_as_written(webserver, browser) -> None:
    # `quarantine/<kind>/` used to lose `<kind>` (read as an HTML tag)
    text = _page_text_when(browser, f"{webserver}/assets/quarantine_summary", "Columns")
    assert "quarantine/<kind>/" in text
    text = _page_text_when(browser, f"{webserver}/assets/raw_sessions", "purchase_amount")
    assert ">= 0; 0 when nothing was bought" in text
