"""The package's layering: domains never import the wiring (the modules that see the whole graph),
not even lazily inside a function, so there is no import cycle through `definitions`."""

import ast
from pathlib import Path

import ecom_assets

PACKAGE = Path(ecom_assets.__file__).parent
DOMAINS = ("ingest", "clean", "features", "churn", "monitoring", "insights")
# the wiring: merge the domains, define the cross-domain jobs, drive runs from the command line
WIRING = {"ecom_assets.definitions", "ecom_assets.jobs", "ecom_assets.pipeline", "ecom_assets.cli",
          "ecom_assets.celery", "ecom_assets.bench", "ecom_assets.latency"}


def imported_modules(path: Path) -> set[str]:
    """Every module an `import` / `from ... import` anywhere in the file names (top level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from ecom_assets import jobs`
    return names


def domain_modules() -> list[Path]:
    return sorted(p for domain in DOMAINS for p in (PACKAGE / domain).rglob("*.py"))


def test_no_domain_module_imports_the_wiring() -> None:
    modules = domain_modules()
    assert len(modules) >= 6 * 2
    offenders = {f"{path.relative_to(PACKAGE.parent)} imports {name}"
                 for path in modules for name in imported_modules(path) if name in WIRING}
    assert not offenders, sorted(offenders)


def test_the_check_sees_a_lazy_import_inside_a_function(tmp_path) -> None:
    # what monitoring/sensors.py used to do: the whole graph, imported inside a function body
    module = tmp_path / "sensors.py"
    module.write_text("def run_once():\n    from ecom_assets.definitions import defs\n    return defs\n")
    assert "ecom_assets.definitions" in imported_modules(module)
    module.write_text("from ecom_assets import pipeline\n")
    assert "ecom_assets.pipeline" in imported_modules(module)


def test_shared_modules_import_no_wiring_either() -> None:
    shared = [p for p in PACKAGE.glob("*.py") if f"ecom_assets.{p.stem}" not in WIRING]
    offenders = {f"{path.name} imports {name}" for path in shared for name in imported_modules(path) if name in WIRING}
    assert not offenders, sorted(offenders)
