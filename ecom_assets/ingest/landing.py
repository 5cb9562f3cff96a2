"""Landing-zone logic shared by the sensor and `ecom-assets run`: which files are ready, what kind
they are, their content hash, and moving files out of the landing folder (to `archive/`, or to
`rejected/` with a reason, an alert line and a WARNING in the log)."""

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ecom_assets.ingest.partitions import archive_name, partition_key
from ecom_assets.settings import EcomSettings

IGNORED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")
IGNORED_PREFIXES = (".", "~$")  # hidden files and folders; Excel's lock file beside an open workbook
KIND_PREFIXES = ("customers", "sessions", "campaigns", "orders", "events")
SUFFIXES = (".csv", ".csv.gz")  # a gzip-compressed export is read like its .csv
REASON_SUFFIX = ".reason.txt"
logger = logging.getLogger(__name__)


def kind_of(name: str) -> str | None:
    """`customers*.csv` / `sessions*.csv` / `campaigns*.csv` / `orders*.csv` / `events*.csv` (or `.csv.gz`),
    case-insensitive; a path's folders do not count."""
    lower = Path(name).name.lower()
    if not lower.endswith(SUFFIXES):
        return None
    return next((k for k in KIND_PREFIXES if lower.startswith(k)), None)


def is_ignored(relative: str | Path) -> bool:
    """Hidden or still being written (write to `.part`/`.tmp` and rename when done), judged on every
    component of the path below landing/: a file inside `.staging/` is as hidden as `.sessions.csv`."""
    return any(part.startswith(IGNORED_PREFIXES) or part.lower().endswith(IGNORED_SUFFIXES)
               for part in Path(relative).parts)


def sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


# run tag of an ingest run whose file was hashed by the tick that requested it: [path below landing/, size,
# mtime_ns, ctime_ns, inode] as hashed; the run reads the file without hashing it again while these still hold
HASHED_TAG = "ecom/hashed_file"
# a file whose last write is this recent when hashing starts may be written again within the same timestamp
# tick, unseen by its stat: its identity is not trusted (git's "racy" files)
RACY_S = 2.0


def stat_identity(path: Path) -> list[int]:
    """[size, mtime_ns, ctime_ns, inode]: any write, truncation, rename or replacement changes one of them
    (ctime cannot be set by a user). Stricter than `io.file_identity` ([size, mtime_ns], what incremental
    steps compare): this one vouches for a digest computed earlier, so a file put back with its old mtime
    must not pass."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]


def hashed(path: Path) -> tuple[str, list[int] | None]:
    """(sha256, the file's identity while it was hashed): the identity is None when the file changed
    while being hashed or had been written less than RACY_S before, so it cannot vouch for the digest."""
    before, started = stat_identity(path), time.time()
    digest = sha256_of(path)
    trusted = stat_identity(path) == before and started - before[1] / 1e9 >= RACY_S
    return digest, before if trusted else None


@dataclass(frozen=True)
class LandingFile:
    path: Path
    name: str  # the path below landing/ (`2024-05/sessions.csv`): what the cursor, tags and messages use
    kind: str | None  # None: the name matches no input kind
    size: int
    mtime: float

    @property
    def signature(self) -> list:
        return [self.size, self.mtime]

    def hashed_key(self) -> tuple[str, list[int] | None]:
        """(partition key, identity of the file hashed: see `hashed`)."""
        digest, identity = hashed(self.path)
        return partition_key(self.path.name, digest), identity


# a rename changes a file's ctime, not its mtime; a writer still appending moves both together
RENAMED_AFTER_WRITE_S = 1.0


def settled(stat, now: float, settle_seconds: float) -> bool:
    """Complete on first sight, without waiting a tick for its signature to repeat: its last write is
    `settle_seconds` old, or it was renamed (or moved) into place at least RENAMED_AFTER_WRITE_S after
    its last write - the write-then-rename drop. ctime is the inode change time (POSIX)."""
    return now - stat.st_mtime >= settle_seconds or stat.st_ctime - stat.st_mtime >= RENAMED_AFTER_WRITE_S


def scan_landing(landing: Path, previous: dict[str, list], assume_stable: bool = False,
                 settle_seconds: float | None = None):
    """Split the landing folder into (ready, waiting, signatures for the next tick).

    Sub-folders are scanned too (exports sorted into `2024-05/`), without following links. A file is
    ready when its size and mtime equal what the previous tick saw, when it has `settled` (with
    `settle_seconds`), or when the caller knows nothing is writing, as `ecom-assets run` does. The
    cursor keys on the path below landing/ and its signature, never on a wall-clock time, so an old
    file copied in later is still seen.
    """
    now = time.time()
    ready, waiting, seen = [], [], {}
    if not landing.exists():
        return ready, waiting, seen
    for path in sorted(landing.rglob("*")):
        name = path.relative_to(landing).as_posix()
        if is_ignored(name) or not path.is_file():
            continue
        try:
            stat = path.stat()
        except FileNotFoundError:  # moved away between listing and stat
            continue
        item = LandingFile(path, name, kind_of(path.name), stat.st_size, stat.st_mtime)
        seen[name] = item.signature
        done = assume_stable or previous.get(name) == item.signature or (
            settle_seconds is not None and settled(stat, now, settle_seconds))
        (ready if done else waiting).append(item)
    return ready, waiting, seen


def alert(settings: EcomSettings, record: dict) -> None:
    """One line in `alerts/alerts.jsonl` (what on-call tooling tails), stamped with the time."""
    with (settings.alerts / "alerts.jsonl").open("a") as handle:
        handle.write(json.dumps({"time": datetime.now(timezone.utc).isoformat(), **record}) + "\n")


def reject(path: Path, settings: EcomSettings, reason: str, name: str | None = None, log=None) -> Path:
    """A whole-file reject, made visible where on-call looks: the file moves to `rejected/` under its
    drop identity (`<stem>__<content hash>.csv`, so a later file of the same name never overwrites it)
    with `<that>.reason.txt`, one `file_rejected` line goes to `alerts/alerts.jsonl`, and a WARNING
    with file and reason goes to `log` (the sensor's or run's logger; else this module's)."""
    name = name or path.name
    target = settings.rejected / archive_name(partition_key(path.name, sha256_of(path)))
    if target.exists():  # the same bytes rejected before: keep that record too
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        target = target.with_name(f"{target.name}.{stamp}")
    shutil.move(str(path), target)
    text = f"{name}: {reason}"
    target.with_name(target.name + REASON_SUFFIX).write_text(text.rstrip() + "\n")
    alert(settings, {"alert": "file_rejected", "file": name, "reason": reason, "rejected_path": str(target)})
    (log or logger).warning(f"file rejected: {text} (moved to {target})")
    return target


def move_to_archive(path: Path, archive: Path, name: str) -> Path:
    """Move an ingested original to `archive/` unchanged (a rename on the same file system)."""
    archive.mkdir(parents=True, exist_ok=True)
    target = archive / name
    shutil.move(str(path), target)
    return target
