"""The code location as the UI sees it: it loads, and every asset explains itself."""

import dagster as dg
import polars as pl

from ecom_assets.definitions import defs
from ecom_assets.resources import build_resources
from ecom_assets.settings import DATA_DIR_ENV, EcomSettings

GROUPS = {"ingest", "clean", "features", "churn", "monitoring", "insights"}


def test_code_location_loads() -> None:
    dg.Definitions.validate_loadable(defs)


def test_every_asset_has_description_owner_group_kinds_and_column_schema() -> None:
    specs = list(defs.resolve_all_asset_specs())
    problems = []
    for spec in specs:
        name = spec.key.to_user_string()
        if not (spec.description or "").strip():
            problems.append(f"{name}: no description")
        if not spec.owners:
            problems.append(f"{name}: no owner")
        if spec.group_name not in GROUPS:
            problems.append(f"{name}: group {spec.group_name!r} is not one of {sorted(GROUPS)}")
        if not spec.kinds:
            problems.append(f"{name}: no kinds")
        if "dagster/column_schema" not in spec.metadata:
            problems.append(f"{name}: no column schema metadata")
    assert not problems, "\n".join(problems)


@dg.asset
def where_am_i(settings: EcomSettings) -> pl.DataFrame:
    return pl.DataFrame({"data_dir": [settings.data_dir]})


def test_resources_follow_the_data_dir_at_run_time(tmp_path, monkeypatch, instance) -> None:
    # The one `defs` object is imported once; the CLI and tests point it elsewhere afterwards.
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    result = dg.materialize([where_am_i], resources=build_resources(), instance=instance)
    assert result.output_for_node("where_am_i")["data_dir"][0] == str(tmp_path)
    assert (tmp_path / "warehouse" / "where_am_i.parquet").exists()


def test_runs_execute_in_process_except_the_celery_job() -> None:
    """Launched runs (sensor, automation, the UI) run their steps in the run's own process; only
    `celery_build_job` hands steps to Celery workers."""
    assert defs.resolve_job_def("build_all_job").executor_def.name == "in_process"
    assert defs.resolve_job_def("ingest_sessions_job").executor_def.name == "in_process"
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "in_process"
    assert defs.resolve_job_def("celery_build_job").executor_def.name == "celery"


def _rendered_text(markdown: str) -> str:
    """What a CommonMark renderer (as the Dagster UI's) shows: the HTML's text."""
    import html
    import re

    from markdown_it import MarkdownIt

    rendered = MarkdownIt("commonmark").render(markdown)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", rendered)).split())


def _as_written(text: str) -> str:
    return " ".join(text.replace("`", "").split())


def test_descriptions_render_as_written() -> None:
    """`quarantine/<kind>/` used to render as `quarantine//` (an HTML tag), `>= 0; …` opening a
    column description as a quote (`= 0; …`)."""
    from ecom_assets.jobs import DOMAINS
    from ecom_assets.metadata import md_escape

    written = {spec.key: spec for d in DOMAINS for a in d.assets for spec in a.specs}
    shown = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    texts = []
    for key, spec in written.items():
        texts.append((spec.description, shown[key].description))
        columns = spec.metadata["dagster/column_schema"].columns
        shown_columns = shown[key].metadata["dagster/column_schema"].columns
        texts += [(c.description, s.description) for c, s in zip(columns, shown_columns) if c.description]
    wrong = [(original, _rendered_text(escaped)) for original, escaped in texts
             if _rendered_text(escaped) != _as_written(original)]
    assert not wrong, wrong[:5]
    # the cases from the issue, and that the comparison would catch them unescaped
    for text in ("The rows themselves are in quarantine/<kind>/.", ">= 0; 0 when nothing was bought",
                 "models/<version>/model.json", "a_b *c* [d] | e"):
        assert _rendered_text(md_escape(text)) == _as_written(text)
        assert _rendered_text(text) != _as_written(text)
    assert any("quarantine/<kind>/" in original for original, _ in texts)
