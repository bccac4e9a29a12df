"""Arrow types of events and compacted files, for the code that builds Arrow data (pyarrow).

Kept apart from agent/archive.py so that a query, which never builds Arrow data itself, does
not import pyarrow (and numpy) at all: about 0.1 s of every process.
"""

import pyarrow as pa

from agent.archive import EVENT_FIELDS, ID_OFFSET, ID_SOURCE

_STORED_TYPES: dict[str, pa.DataType] = {
    "time_local": pa.timestamp("s"),
    "status": pa.int32(),
    "body_bytes_sent": pa.int64(),
}
EVENT_COLUMNS = tuple((name, _STORED_TYPES.get(name, pa.string())) for name in EVENT_FIELDS)
EVENT_SCHEMA = pa.schema(EVENT_COLUMNS)
COMPACTED_SCHEMA = pa.schema([*EVENT_COLUMNS, (ID_SOURCE, pa.string()), (ID_OFFSET, pa.int64())])
# Files written before the split hold `event_id` whole; older ones have no identity at all.
WHOLE_ID_SCHEMA = pa.schema([*EVENT_COLUMNS, ("event_id", pa.string())])
# What the trusted reader's rows hold (DuckDB exports TIMESTAMP in microseconds).
ARROW_TYPES: dict[str, pa.DataType] = {
    **{name: pa.string() for name in EVENT_FIELDS},
    "time_local": pa.timestamp("us"),
    "status": pa.int32(),
    "body_bytes_sent": pa.int64(),
    "event_id": pa.string(),
}
