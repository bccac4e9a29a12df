"""compacted.parquet stores `event_id` split in two columns; every id must come back exactly.

The split and the reading are tested together: ids written by the compactor's row groups are
read back through the trusted reader's SQL (agent/events.py) and compared byte for byte, and
files in the two older layouts (a whole `event_id` column, no identity at all) still dedup
against raw objects that replay their events.
"""

import gzip
import json
import random
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agent.archive import ID_OFFSET, ID_SOURCE, IdColumns, encode_metadata
from agent.compact import _RowGroups, split_event_id
from agent.events import EVENT_ID, ParquetFile, compacted_rows
from agent.schema import ARROW_TYPES, WHOLE_ID_SCHEMA
from tests.agent.conftest import count, event_line, write_raw

HOUR = "region=eu-1/dt=2025-01-01/hour=10"
# The shapes an id can take: docs/contracts.md's two forms, and strings that only look like
# `source:offset` (leading zero, sign, space, too many digits, non-ASCII digits, a newline).
IDS = [
    "ip-10-0-1-7:1835012-9f2c1a0b3d4e5f60:1048576",
    "ip-10-0-1-7:1835012-9f2c1a0b3d4e5f60:0",
    "ip-10-0-1-7:unverified:3f1c9a52-2b7e-4d1a-9c3e-7b5e1f0a2d44",
    "node:inode:007",
    "node:inode:-5",
    "node:inode:5 ",
    "node:inode:123456789012345678",
    "node:inode:1234567890123456789",
    "node:inode:\u0661\u0662",
    "no-colon",
    ":7",
    "a:\n:5",
    "",
    None,
]


def _batch(ids: list[str | None]) -> pa.RecordBatch:
    event = json.loads(event_line())
    event["time_local"] = event["time_local"].replace("T", " ")
    rows = [{**event, EVENT_ID: i} for i in ids]
    schema = pa.schema([(name, ARROW_TYPES[name]) for name in [*event, EVENT_ID]])
    as_text = pa.schema([f.with_type(pa.string()) if f.name == "time_local" else f for f in schema])
    return pa.RecordBatch.from_pylist(rows, schema=as_text).cast(schema)


def test_split_keeps_only_canonical_offsets_as_numbers() -> None:
    source, offset = split_event_id(pa.array(IDS, pa.string()))
    pairs = list(zip(source.to_pylist(), offset.to_pylist(), strict=True))
    assert pairs[0] == ("ip-10-0-1-7:1835012-9f2c1a0b3d4e5f60", 1048576)
    assert pairs[1] == ("ip-10-0-1-7:1835012-9f2c1a0b3d4e5f60", 0)
    assert pairs[6] == ("node:inode", 123456789012345678)
    assert pairs[10] == ("", 7)
    # Kept whole: no offset that would print back as the same text.
    for index in (2, 3, 4, 5, 7, 8, 9, 12):
        assert pairs[index] == (IDS[index], None)
    assert pairs[13] == (None, None)


def test_split_agrees_with_the_rule_on_seeded_near_misses() -> None:
    """20,000 seeded strings of colons, digits and look-alikes: an id is split exactly when
    what follows its last colon is a canonical decimal of at most 18 ASCII digits (the rule,
    as a regular expression), and a split id rebuilds as `source:offset`."""
    rng = random.Random(13)
    alphabet = ["0", "1", "9", ":", ":", "a", "-", " ", "+", ".", "\u0661", "\n"]
    ids = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))) for _ in range(20_000)]
    ids += [f"n:{'1' * width}" for width in range(1, 21)]
    source, offset = split_event_id(pa.array(ids, pa.string()))
    canonical = re.compile(r"(0|[1-9][0-9]{0,17})")
    for text, head, number in zip(ids, source.to_pylist(), offset.to_pylist(), strict=True):
        before, colon, after = text.rpartition(":")
        if colon and canonical.fullmatch(after):
            assert (head, number) == (before, int(after)), text
            assert f"{head}:{number}" == text
        else:
            assert (head, number) == (text, None), text


def test_every_id_reads_back_exactly(tmp_path: Path) -> None:
    path = tmp_path / "compacted.parquet"
    groups = _RowGroups(path)
    groups.add(_batch(IDS))
    groups.flush()
    groups.close()
    assert {ID_SOURCE, ID_OFFSET} <= set(pq.read_schema(path).names)
    sql = compacted_rows([ParquetFile(str(path), IdColumns.SPLIT)], with_event_id=True)
    read = [row[0] for row in duckdb.sql(f"SELECT {EVENT_ID} FROM ({sql})").fetchall()]
    assert sorted(read, key=repr) == sorted(IDS, key=repr)


def test_row_groups_are_sorted_by_identity_and_encoded_compactly(tmp_path: Path) -> None:
    path = tmp_path / "compacted.parquet"
    ids = [f"node-{i % 3}:4711:{(1000 - i) * 300}" for i in range(1000)]
    groups = _RowGroups(path)
    groups.add(_batch(ids))
    groups.flush()
    groups.close()
    table = pq.read_table(path)
    keys = list(zip(table[ID_SOURCE].to_pylist(), table[ID_OFFSET].to_pylist(), strict=True))
    assert keys == sorted(keys)
    columns = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {columns.column(i).path_in_schema: columns.column(i).encodings for i in range(12)}
    assert "DELTA_BINARY_PACKED" in encodings[ID_OFFSET]
    assert "BYTE_STREAM_SPLIT" in encodings["body_bytes_sent"]
    assert "RLE_DICTIONARY" in encodings["request"]
    # Text columns read back as plain strings, not as the dictionaries they were written from.
    assert pq.read_schema(path).field("request").type == pa.string()


@pytest.mark.parametrize("layout", [IdColumns.WHOLE, IdColumns.NONE])
def test_older_layouts_still_dedup_against_raw_replays(tmp_path: Path, layout: IdColumns) -> None:
    """A file written before the split (or before identities) and a raw object replaying
    its events: each event counts once (docs/contracts.md, duplicates)."""
    hour = tmp_path / "archive" / HOUR
    lines = [event_line(request=f"/p/{i}") for i in range(20)]
    events = [json.loads(line) for line in lines]
    if layout is IdColumns.WHOLE:
        for offset, event in enumerate(events):
            event[EVENT_ID] = f"node-1:4711:{offset * 100}"
        replay = [(json.dumps(e) + "\n").encode() for e in events[10:]]
        schema = WHOLE_ID_SCHEMA
    else:
        replay = lines[10:]
        schema = pa.schema([f for f in WHOLE_ID_SCHEMA if f.name != EVENT_ID])
    as_text = schema.set(2, pa.field("time_local", pa.string()))
    table = pa.Table.from_pylist(events, schema=as_text).cast(schema)
    metadata = encode_metadata({"a.gz": '"e"'}, {})
    hour.mkdir(parents=True)
    pq.write_table(table.replace_schema_metadata(metadata), hour / "compacted.parquet")
    write_raw(hour / "late.gz", replay)
    n, _ = count(tmp_path / "archive")
    assert n == 20


@pytest.mark.s3
def test_compactor_rewrites_an_old_file_in_the_split_layout(
    s3_endpoint: str, s3_env: None, bucket: str
) -> None:
    """An hour compacted before the split gets new raw objects: the rebuilt file keeps every
    old id exactly, drops the replayed events, and uses the split columns."""
    from datetime import timedelta

    from agent.compact import Compactor
    from agent.s3 import make_client

    client = make_client(s3_endpoint)
    prefix = f"logs/{HOUR}/"
    events = [json.loads(event_line(request=f"/p/{i}")) for i in range(30)]
    for i, event in enumerate(events):
        event[EVENT_ID] = (
            f"node-1:4711-9f2c1a0b3d4e5f60:{i * 100}" if i % 3 else f"n:unverified:{i}"
        )
    as_text = WHOLE_ID_SCHEMA.set(2, pa.field("time_local", pa.string()))
    old = pa.Table.from_pylist(events[:20], schema=as_text).cast(WHOLE_ID_SCHEMA)
    sink = pa.BufferOutputStream()
    pq.write_table(old.replace_schema_metadata(encode_metadata({"a.gz": '"e"'}, {})), sink)
    client.put_object(
        Bucket=bucket, Key=prefix + "compacted.parquet", Body=sink.getvalue().to_pybytes()
    )
    replay = b"".join((json.dumps(e) + "\n").encode() for e in events[15:])
    client.put_object(Bucket=bucket, Key=prefix + "b.gz", Body=gzip.compress(replay))
    outcome = Compactor(client, bucket, "logs/", timedelta(0)).run_once().outcomes[0]
    assert (outcome.events, outcome.duplicates) == (30, 5)
    body = client.get_object(Bucket=bucket, Key=prefix + "compacted.parquet")["Body"].read()
    table = pq.read_table(pa.BufferReader(body))
    assert EVENT_ID not in table.column_names
    rebuilt = [
        source if offset is None else f"{source}:{offset}"
        for source, offset in zip(
            table[ID_SOURCE].to_pylist(), table[ID_OFFSET].to_pylist(), strict=True
        )
    ]
    assert sorted(rebuilt) == sorted(e[EVENT_ID] for e in events)
