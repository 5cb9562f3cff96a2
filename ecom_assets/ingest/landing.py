"""Pure landing-zone logic shared by the sensor and `ecom-assets run`: which files are ready,
what kind they are, their content hash, and moving files out of the landing folder."""

import hashlib
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ecom_assets.ingest.partitions import partition_key

IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")
KIND_PREFIXES = ("customers", "sessions", "campaigns", "orders", "events")


def kind_of(name: str) -> str | None:
    """`customers*.csv` / `sessions*.csv` / `campaigns*.csv` / `orders*.csv` / `events*.csv` (or `.csv.gz`),
    case-insensitive."""
    lower = name.lower().removesuffix(".gz")
    if not lower.endswith(".csv"):
        return None
    return next((k for k in KIND_PREFIXES if lower.startswith(k)), None)


def is_ignored(name: str) -> bool:
    """Hidden or still being written (write to `.part`/`.tmp` and rename when done)."""
    return name.startswith(".") or name.lower().endswith(IGNORED_SUFFIXES)


def sha256_of(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class LandingFile:
    path: Path
    kind: str | None  # None: the name matches no input kind
    size: int
    mtime: float

    @property
    def signature(self) -> list:
        return [self.size, self.mtime]

    def partition_key(self) -> str:
        return partition_key(self.path.name, sha256_of(self.path))


def scan_landing(landing: Path, previous: dict[str, list], assume_stable: bool = False):
    """Split the landing folder into (ready, waiting, signatures for the next tick).

    A file is ready when its size and mtime equal what the previous tick saw (or when the caller
    knows nothing is writing, as `ecom-assets run` does). The cursor keys on the file name and
    its signature, never on a wall-clock time, so an old file copied in later is still seen.
    """
    ready, waiting, seen = [], [], {}
    if not landing.exists():
        return ready, waiting, seen
    for path in sorted(landing.iterdir()):
        if not path.is_file() or is_ignored(path.name):
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:  # moved away between listing and stat
            continue
        item = LandingFile(path, kind_of(path.name), stat.st_size, stat.st_mtime)
        seen[path.name] = item.signature
        (ready if assume_stable or previous.get(path.name) == item.signature else waiting).append(item)
    return ready, waiting, seen


def move_to_rejected(path: Path, rejected: Path, reason: str) -> Path:
    """Move a whole-file reject aside with `<name>.reason.txt`; never overwrite an earlier reject."""
    rejected.mkdir(parents=True, exist_ok=True)
    target = rejected / path.name
    if target.exists():
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        target = rejected / f"{path.stem}.{stamp}{path.suffix}"
    shutil.move(str(path), target)
    target.with_name(target.name + ".reason.txt").write_text(reason.rstrip() + "\n")
    return target


def move_to_archive(path: Path, archive: Path, name: str) -> Path:
    """Move an ingested original to `archive/` unchanged (a rename on the same file system)."""
    archive.mkdir(parents=True, exist_ok=True)
    target = archive / name
    shutil.move(str(path), target)
    return target
