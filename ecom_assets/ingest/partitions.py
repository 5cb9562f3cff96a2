"""One dynamic partition per dropped file, keyed `<file name>__<first 12 hex of its sha256>`.

The key is readable in the UI and unique by content: the same bytes always map to the same
partition (and run key), so a re-drop never runs twice.
"""

import dagster as dg

customers_files = dg.DynamicPartitionsDefinition(name="customers_files")
sessions_files = dg.DynamicPartitionsDefinition(name="sessions_files")
campaigns_files = dg.DynamicPartitionsDefinition(name="campaigns_files")
orders_files = dg.DynamicPartitionsDefinition(name="orders_files")
events_files = dg.DynamicPartitionsDefinition(name="events_files")

PARTITIONS = {"customers": customers_files, "sessions": sessions_files, "campaigns": campaigns_files,
              "orders": orders_files, "events": events_files}
HASH_CHARS = 12


def partition_key(file_name: str, sha256_hex: str) -> str:
    return f"{file_name}__{sha256_hex[:HASH_CHARS]}"


def file_name_of(key: str) -> str:
    return key.rsplit("__", 1)[0]


def archive_name(key: str) -> str:
    """`sessions_001.csv__ab12…` -> `sessions_001__ab12….csv` (still opens as a CSV)."""
    name, digest = key.rsplit("__", 1)
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}__{digest}.{suffix}" if dot else f"{name}__{digest}"
