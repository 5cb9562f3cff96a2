"""The model registry on disk: `models/<version>/` (XGBoost JSON, calibration, card, drift reference)
and `models/champion.json`, the pointer to the version that serves. JSON and parquet only."""

import json
import re
from datetime import datetime, timezone
from pathlib import Path

from ecom_assets.io import write_json_atomic

VERSION = re.compile(r"^v(\d{4,})$")
CHAMPION_FILE = "champion.json"
RETIRED_FILE = "retired.json"  # champions retired because a classic ranked a newer holdout better


def list_versions(models_dir: Path) -> list[str]:
    if not Path(models_dir).exists():
        return []
    return sorted((p.name for p in Path(models_dir).iterdir() if p.is_dir() and VERSION.match(p.name)),
                  key=lambda v: int(VERSION.match(v).group(1)))


def next_version(models_dir: Path) -> str:
    versions = list_versions(models_dir)
    n = int(VERSION.match(versions[-1]).group(1)) + 1 if versions else 1
    return f"v{n:04d}"


def champion_version(models_dir: Path) -> str | None:
    path = Path(models_dir) / CHAMPION_FILE
    return json.loads(path.read_text())["version"] if path.exists() else None


def champion_record(models_dir: Path) -> dict | None:
    path = Path(models_dir) / CHAMPION_FILE
    return json.loads(path.read_text()) if path.exists() else None


def promote(models_dir: Path, version: str, reason: str) -> None:
    write_json_atomic({"version": version, "promoted_at": datetime.now(timezone.utc).isoformat(), "reason": reason},
                      Path(models_dir) / CHAMPION_FILE)


def retire(models_dir: Path, reason: str) -> None:
    """No champion serves from now on (the calibrated classic of the latest version does, see `serving`); the
    retired champion and why are kept in `retired.json` (newest last)."""
    record = champion_record(models_dir)
    if record is None:
        return
    retired = [*retired_champions(models_dir),
               {**record, "retired_at": datetime.now(timezone.utc).isoformat(), "retired_because": reason}]
    write_json_atomic(retired, Path(models_dir) / RETIRED_FILE)
    (Path(models_dir) / CHAMPION_FILE).unlink()


def retired_champions(models_dir: Path) -> list[dict]:
    """Every retired champion's record (`retire`), oldest first; [] when none was."""
    path = Path(models_dir) / RETIRED_FILE
    return json.loads(path.read_text()) if path.exists() else []


def load_card(models_dir: Path, version: str) -> dict:
    return json.loads((Path(models_dir) / version / "model_card.json").read_text())


def write_card(models_dir: Path, version: str, card: dict) -> Path:
    path = Path(models_dir) / version / "model_card.json"
    write_json_atomic(card, path)
    return path


def latest_card(models_dir: Path) -> dict | None:
    """The card of the newest version that has one (the card is written last: a folder without one is a
    training still running or interrupted). None while there is none."""
    for version in reversed(list_versions(models_dir)):
        path = Path(models_dir) / version / "model_card.json"
        if path.exists():
            return json.loads(path.read_text())
    return None


def could_not_train(models_dir: Path, card: dict | None) -> str | None:
    """Why `card`'s version could not be trained (too little history, or neither a model nor a serving
    baseline was saved), in words; None when it was trained (or `card` is None: no version yet)."""
    if card is None:
        return None
    version = card["version"]
    if card["status"] == "insufficient_history":
        return f"{version} could not be trained (insufficient_history)"
    folder = Path(models_dir) / version
    if not (folder / "model.json").exists() and not (folder / "baseline.json").exists():
        return f"{version} saved neither a model nor a serving baseline"
    return None


def reference_features_path(models_dir: Path, version: str) -> Path:
    return Path(models_dir) / version / "reference_features.parquet"


def save_model(models_dir: Path, version: str, model, baseline: dict) -> Path:
    """model.json (XGBoost's own JSON), calibration.json, baseline.json under models/<version>/."""
    folder = Path(models_dir) / version
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / ".model.partial.json"  # xgboost picks the format from the suffix
    model.booster.save_model(str(partial))
    partial.replace(folder / "model.json")
    write_json_atomic({**model.calibration, "features": model.features, "categories": model.categories,
                       "best_iteration": model.best_iteration, "dropped_features": model.dropped_features,
                       "training": model.training}, folder / "calibration.json")
    save_baseline(models_dir, version, baseline)
    return folder


def save_baseline(models_dir: Path, version: str, baseline: dict) -> None:
    write_json_atomic(baseline, Path(models_dir) / version / "baseline.json")


def load_model(models_dir: Path, version: str):
    """(TrainedModel, baseline) for a saved version; nthread set again (it is not stored)."""
    import xgboost as xgb

    from ecom_assets.churn.model import NTHREAD, TrainedModel

    folder = Path(models_dir) / version
    booster = xgb.Booster()
    booster.load_model(str(folder / "model.json"))
    booster.set_param({"nthread": NTHREAD})
    calibration = json.loads((folder / "calibration.json").read_text())
    baseline = json.loads((folder / "baseline.json").read_text())
    model = TrainedModel(booster, calibration["features"], calibration["categories"], calibration,
                         calibration["best_iteration"], calibration.get("dropped_features", {}),
                         calibration.get("training", {}))
    return model, baseline


def load_baseline(models_dir: Path, version: str) -> dict | None:
    path = Path(models_dir) / version / "baseline.json"
    return json.loads(path.read_text()) if path.exists() else None


def serving(models_dir: Path) -> tuple[str | None, str | None]:
    """(champion version or None, the classic that scores without one or None): what churn_predictions serves.
    Without a champion, the calibrated classic of the latest version's baseline scores; with neither (too
    little history to estimate even the baseline), nothing is scored."""
    champion = champion_version(models_dir)
    if champion:
        return champion, None
    card = latest_card(models_dir)
    baseline = load_baseline(models_dir, card["version"]) if card and card.get("version") else None
    return None, (baseline or {}).get("classic")


def serving_in_words(models_dir: Path) -> str:
    """One line for people: which model scores the churn list, and why."""
    champion, classic = serving(models_dir)
    if champion:
        record = champion_record(models_dir) or {}
        return f"{champion} ({record.get('reason', 'champion')})"
    if classic:
        from ecom_assets.churn.model import classic_has_skill, no_skill_words

        card = latest_card(models_dir)
        baseline = load_baseline(models_dir, card["version"])
        if not classic_has_skill(baseline):
            return f"the base rate, {no_skill_words(baseline)}"
        last = next(reversed(retired_champions(models_dir)), None)
        since = (f"champion {last['version']} was retired on {last['retired_at'][:10]}, the classic ranking a newer "
                 "holdout better, and no model has passed the skill gate since" if last
                 else "no model has passed the skill gate")
        return f"the calibrated classic baseline {classic} ({since})"
    return "nothing: not enough history to estimate even the classic baseline (customers are `unscored`)"
