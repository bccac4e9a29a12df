"""The archive layout shared by the compactor and the query tool (docs/contracts.md).

<prefix>region=<region>/dt=YYYY-MM-DD/hour=HH/<name>.gz        raw gzip NDJSON
<prefix>region=<region>/dt=YYYY-MM-DD/hour=HH/compacted.parquet one per hour
"""

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

COMPACTED_NAME = "compacted.parquet"
RAW_SUFFIX = ".gz"
# Parquet key-value metadata: the raw objects the file was built from, name -> ETag (files
# written before ETags were tracked hold a list of names) ...
SOURCES_KEY = "bacalhau_logs.sources"
# ... and the ones the compactor read but could not decode: not in the file, so readers
# still read (and report) them, but remembered so an unchanged hour is not rebuilt.
REJECTED_KEY = "bacalhau_logs.rejected"

# The event's fields in file order; their Arrow types are in agent/schema.py (pyarrow is
# imported only where Arrow data is built: the compactor), their SQL types in agent/events.py.
EVENT_FIELDS = (
    "remote_addr",
    "remote_user",
    "time_local",
    "http_method",
    "request",
    "http_version",
    "status",
    "body_bytes_sent",
    "http_referer",
    "http_user_agent",
)
# compacted.parquet: the event and its identity, `event_id` split at its last `:` when what
# follows is a canonical decimal offset (`node:inode-fingerprint` : `1048576`): the source
# repeats for a whole file, so it costs nothing as a dictionary, and sorted offsets delta-encode
# to about a byte, where the whole string costs over two. Any other id (`node:unverified:uuid`)
# is kept whole in the source with a null offset; both are null for lines archived before
# identities. `event_id = source || ':' || offset` when the offset is set, else `source`.
ID_SOURCE, ID_OFFSET = "event_id_source", "event_id_offset"


class IdColumns(enum.Enum):
    """How a compacted file stores `event_id`."""

    NONE = "none"
    WHOLE = "whole"
    SPLIT = "split"


def id_columns(names: Iterable[str]) -> IdColumns:
    """The identity layout of a compacted file with these column names."""
    present = set(names)
    if {ID_SOURCE, ID_OFFSET} <= present:
        return IdColumns.SPLIT
    return IdColumns.WHOLE if "event_id" in present else IdColumns.NONE


@dataclass(frozen=True, order=True)
class Hour:
    """One hour partition of the archive."""

    region: str
    start: datetime

    @property
    def end(self) -> datetime:
        return self.start + timedelta(hours=1)

    def prefix(self, root: str) -> str:
        """The key prefix of this hour under `root` (which ends with `/` or is empty)."""
        return f"{root}region={self.region}/dt={self.start:%Y-%m-%d}/hour={self.start:%H}/"


def partition_values(parts: Iterable[str]) -> dict[str, str]:
    """The `key=value` path segments of a key or path, as a dict."""
    values: dict[str, str] = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if sep and key and value:
            values[key] = value
    return values


def partition_span(values: Mapping[str, str]) -> tuple[datetime, datetime] | None:
    """The time span a partition covers from its `dt`/`hour` values, or None if unknown.

    Raises ValueError for a malformed `dt` or `hour`.
    """
    if "dt" not in values:
        return None
    day = datetime.strptime(values["dt"], "%Y-%m-%d")
    if "hour" not in values:
        return day, day + timedelta(days=1)
    hour = int(values["hour"])
    if not 0 <= hour < 24:
        raise ValueError(f"hour out of range: {values['hour']!r}")
    start = day + timedelta(hours=hour)
    return start, start + timedelta(hours=1)


def parse_hour_key(key: str, root: str) -> tuple[Hour, str] | None:
    """Split an object key into its hour and basename; None if it is not in the layout."""
    if not key.startswith(root):
        return None
    *dirs, name = key[len(root) :].split("/")
    values = partition_values(dirs)
    if len(dirs) != 3 or "region" not in values:
        return None
    try:
        span = partition_span(values)
    except ValueError:
        return None
    if span is None or "hour" not in values:
        return None
    return Hour(values["region"], span[0]), name


def encode_metadata(sources: Mapping[str, str], rejected: Mapping[str, str]) -> dict[str, str]:
    """Parquet key-value metadata recording what a compacted file was built from."""
    return {
        SOURCES_KEY: json.dumps(dict(sorted(sources.items()))),
        REJECTED_KEY: json.dumps(dict(sorted(rejected.items()))),
    }


def _decode_names(metadata: Mapping[bytes, bytes] | None, key: str) -> dict[str, str | None]:
    raw = (metadata or {}).get(key.encode())
    if raw is None:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValueError(f"{key} is not JSON") from None
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return dict.fromkeys(value)  # written before ETags were recorded
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return dict(value)
    raise ValueError(f"{key} is neither a list of names nor an object of name -> ETag")


def decode_source_etags(metadata: Mapping[bytes, bytes] | None) -> dict[str, str | None]:
    """`bacalhau_logs.sources` as name -> ETag (None when only the name was recorded)."""
    return _decode_names(metadata, SOURCES_KEY)


def decode_rejected(metadata: Mapping[bytes, bytes] | None) -> dict[str, str]:
    """`bacalhau_logs.rejected` as name -> ETag."""
    return {k: v for k, v in _decode_names(metadata, REJECTED_KEY).items() if v is not None}


def decode_sources(metadata: Mapping[bytes, bytes] | None) -> list[str]:
    """The names in `bacalhau_logs.sources` (empty if absent); ValueError if malformed."""
    return sorted(decode_source_etags(metadata))
