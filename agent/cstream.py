"""Arrow C streams between two DuckDB databases, with a look at every batch on the way.

The trusted reader's results reach the sandbox as Arrow C streams (the C stream interface,
https://arrow.apache.org/docs/format/CStreamInterface.html, exchanged as PyCapsules). This
module chains the streams of several reader queries into one and calls back with every batch
before the sandbox sees it, through ctypes: no pyarrow, no copy of the data, and the batches go
from one database's threads to the other's without Python touching a value. A query pays for
pyarrow and numpy only where it needs them (the compactor; de-duplication).

A batch is a struct array, one child per column. `Batch.ones` counts the true values of a
BOOLEAN column; `Batch.mask` and `Batch.set_mask` read and rewrite them (numpy), which is how
the reader drops a re-delivered event: its `_ok` flag is cleared in place, before the consumer
has seen the batch, and the sandbox's `logs` view keeps only rows whose flag is set.
"""

from __future__ import annotations

import ctypes
import errno
from collections import deque
from collections.abc import Callable, Generator, Sequence
from ctypes import CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_int64, c_uint8, c_void_p
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_STREAM_CAPSULE = b"arrow_array_stream"
# Rows looked at together (see ChainedStream._pull).
GROUP_ROWS = 1 << 16


class ArrowArray(Structure):
    """`struct ArrowArray` of the C data interface."""


ArrowArray._fields_ = [
    ("length", c_int64),
    ("null_count", c_int64),
    ("offset", c_int64),
    ("n_buffers", c_int64),
    ("n_children", c_int64),
    ("buffers", POINTER(c_void_p)),
    ("children", POINTER(POINTER(ArrowArray))),
    ("dictionary", POINTER(ArrowArray)),
    ("release", c_void_p),
    ("private_data", c_void_p),
]


class ArrowArrayStream(Structure):
    """`struct ArrowArrayStream` of the C stream interface."""


_GetSchema = CFUNCTYPE(c_int, POINTER(ArrowArrayStream), c_void_p)
_GetNext = CFUNCTYPE(c_int, POINTER(ArrowArrayStream), POINTER(ArrowArray))
_GetLastError = CFUNCTYPE(c_void_p, POINTER(ArrowArrayStream))
_Release = CFUNCTYPE(None, POINTER(ArrowArrayStream))
ArrowArrayStream._fields_ = [
    ("get_schema", _GetSchema),
    ("get_next", _GetNext),
    ("get_last_error", _GetLastError),
    ("release", _Release),
    ("private_data", c_void_p),
]

_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, c_char_p]
_new_capsule = ctypes.pythonapi.PyCapsule_New
_new_capsule.restype = ctypes.py_object
_new_capsule.argtypes = [c_void_p, c_char_p, c_void_p]


class StreamError(Exception):
    """A producer's stream failed; the message is the producer's own."""


def take_stream(capsule: object) -> ArrowArrayStream:
    """Move the stream out of an `arrow_array_stream` capsule (the capsule keeps nothing)."""
    address = _capsule_pointer(capsule, _STREAM_CAPSULE)
    stream = ArrowArrayStream()
    ctypes.memmove(ctypes.byref(stream), address, ctypes.sizeof(ArrowArrayStream))
    # Moved: the capsule's destructor releases only a stream whose `release` is set.
    ArrowArrayStream.from_address(address).release = _Release()
    return stream


def _error_of(stream: ArrowArrayStream, code: int) -> str:
    message = stream.get_last_error(ctypes.byref(stream)) if stream.get_last_error else None
    return (
        ctypes.string_at(message).decode("utf-8", "replace")
        if message
        else errno.errorcode.get(code, f"error {code}")
    )


class Batch:
    """One exported batch (a struct array) and its column positions."""

    def __init__(self, array: ArrowArray, columns: dict[str, int]) -> None:
        self.array = array
        self.columns = columns
        self.length = int(array.length)

    def _child(self, column: str) -> tuple[ArrowArray, int]:
        child = self.array.children[self.columns[column]].contents
        return child, int(self.array.offset) + int(child.offset)

    def ones(self, column: str) -> int:
        """How many values of a BOOLEAN column are true (a null counts as false)."""
        child, offset = self._child(column)
        if not self.length:
            return 0
        end = offset + self.length
        size = (end + 7) // 8

        def bits(buffer: int) -> int:
            word = int.from_bytes(ctypes.string_at(child.buffers[buffer], size), "little")
            return (word >> offset) & ((1 << self.length) - 1)

        values = bits(1)
        if child.null_count and child.buffers[0]:
            values &= bits(0)
        return values.bit_count()

    def _bitmap(self, column: str, buffer: int) -> tuple[npt.NDArray[np.uint8], int]:
        import numpy as np

        child, offset = self._child(column)
        size = (offset + self.length + 7) // 8
        raw = (c_uint8 * size).from_address(child.buffers[buffer])
        return np.frombuffer(memoryview(raw), dtype=np.uint8), offset

    def mask(self, column: str) -> npt.NDArray[np.bool_]:
        """A BOOLEAN column as a numpy mask (null as false)."""
        import numpy as np

        bitmap, offset = self._bitmap(column, 1)
        values = np.unpackbits(bitmap, bitorder="little")[offset : offset + self.length]
        child, _ = self._child(column)
        if child.null_count and child.buffers[0]:
            validity, _ = self._bitmap(column, 0)
            values &= np.unpackbits(validity, bitorder="little")[offset : offset + self.length]
        return values.astype(bool)

    def set_mask(self, column: str, mask: npt.NDArray[np.bool_]) -> None:
        """Rewrite a BOOLEAN column's values in place (its nulls stay null, hence false)."""
        import numpy as np

        bitmap, offset = self._bitmap(column, 1)
        bits = np.unpackbits(bitmap, bitorder="little")
        bits[offset : offset + self.length] = mask
        bitmap[:] = np.packbits(bits, bitorder="little")[: len(bitmap)]

    def uint64(self, column: str) -> npt.NDArray[np.uint64]:
        """A UBIGINT column's values (whatever a null slot holds: callers mask them)."""
        import numpy as np

        child, offset = self._child(column)
        values = (ctypes.c_uint64 * (offset + self.length)).from_address(child.buffers[1])
        return np.frombuffer(memoryview(values), dtype=np.uint64)[offset:]


class ChainedStream:
    """One Arrow C stream made of `sources`' streams, one after the other.

    `schema()` opens a producer stream of no rows with the same columns, for consumers that
    ask for the schema only (DuckDB does, when it binds a query); each source opens one
    producer stream (a capsule) when its first batch is asked for; `on_batches(index,
    batches)` sees every batch of source `index` before the consumer does, a few at a time
    (GROUP_ROWS rows), and may clear flags;
    `on_end()` runs once the last source is exhausted. A producer's error ends the stream with
    the producer's message, which `failure` keeps.
    """

    def __init__(
        self,
        schema: Callable[[], object],
        sources: Sequence[Callable[[], object]],
        on_batches: Callable[[int, list[Batch]], None],
        on_end: Callable[[], None],
    ) -> None:
        if not sources:
            raise ValueError("a chained stream needs at least one source")
        self.schema = schema
        self.sources = list(sources)
        self.on_batches = on_batches
        self.on_end = on_end
        self.failure: str | None = None
        self._index = -1
        self._done = False
        self._queue: deque[ArrowArray] = deque()
        self._current: ArrowArrayStream | None = None
        self._columns: dict[str, int] = {}
        self._message = ctypes.create_string_buffer(b"")
        # The exported struct and its callbacks must outlive every call the consumer makes.
        self._callbacks = (
            _GetSchema(self._get_schema),
            _GetNext(self._get_next),
            _GetLastError(self._get_last_error),
            _Release(self._release),
        )
        self._exported = ArrowArrayStream(*self._callbacks, None)

    def capsule(self) -> Any:
        """An `arrow_array_stream` capsule for the consumer (used once)."""
        return _new_capsule(ctypes.addressof(self._exported), _STREAM_CAPSULE, None)

    def schema_into(self, address: int) -> None:
        """Write the schema into the `struct ArrowSchema` at `address` (the caller's)."""
        if self._get_schema(None, address):
            raise StreamError(self.failure or "no schema")

    def arrays(self) -> Generator[ArrowArray, None, None]:
        """The batches, read here instead of by a C consumer; each is the caller's to
        release (or to move into pyarrow). Released when the iterator ends or is closed.

        Python consumers use this rather than the capsule: one that releases a stream while
        it unwinds an exception (pyarrow does) would call back into Python in that state.
        """
        try:
            while True:
                array = ArrowArray()
                if self._get_next(None, ctypes.pointer(array)):
                    raise StreamError(self.failure or "the stream failed")
                if not array.release:
                    return
                yield array
        finally:
            self.close()

    def close(self) -> None:
        """Release what no consumer took or released (a capsule never read)."""
        if self._exported.release:
            self._release(ctypes.pointer(self._exported))

    def _open(self, index: int) -> None:
        self._close_current()
        self._index = index
        self._current = take_stream(self.sources[index]())

    def _close_current(self) -> None:
        if self._current is not None and self._current.release:
            self._current.release(ctypes.byref(self._current))
        self._current = None

    def _fail(self, message: str) -> int:
        self.failure = message
        self._message = ctypes.create_string_buffer(message.encode("utf-8", "replace"))
        return errno.EIO

    def _get_schema(self, _stream: Any, schema: int) -> int:
        try:
            empty = take_stream(self.schema())
            try:
                code = int(empty.get_schema(ctypes.byref(empty), schema))
                return self._fail(_error_of(empty, code)) if code else 0
            finally:
                empty.release(ctypes.byref(empty))
        except Exception as error:  # a callback must never raise into C
            return self._fail(str(error) or type(error).__name__)

    def _get_next(self, _stream: Any, out: Any) -> int:
        try:
            self._fill()
            if self._queue:
                array = self._queue.popleft()
                # A struct array is moved by copying it; the consumer releases it.
                ctypes.memmove(out, ctypes.addressof(array), ctypes.sizeof(ArrowArray))
                return 0
            out.contents.release = None
            return 0
        except Exception as error:  # a callback must never raise into C
            return self._fail(str(error) or type(error).__name__)

    def _fill(self) -> None:
        """Queue the next group of batches, seen by `on_batches`, unless some are queued."""
        while not self._queue and not self._done:
            if self._current is None:
                self._open(self._index + 1)
            group, ended = self._pull()
            if group:
                try:
                    if not self._columns:
                        self._columns = self._names()
                    self.on_batches(self._index, [Batch(a, self._columns) for a in group])
                except BaseException:
                    for array in group:
                        release_array(array)
                    raise
                self._queue.extend(group)
            if ended:
                self._close_current()
                if self._index + 1 == len(self.sources):
                    self._done = True
                    self.on_end()

    def _pull(self) -> tuple[list[ArrowArray], bool]:
        """Batches of the current producer up to GROUP_ROWS rows, and whether it ended.

        Producers hand over small batches (DuckDB: a chunk of a few thousand rows each);
        looking at several at once keeps the cost per row of numpy's calls low.
        """
        assert self._current is not None
        group: list[ArrowArray] = []
        rows = 0
        while rows < GROUP_ROWS:
            array = ArrowArray()
            code = int(self._current.get_next(ctypes.byref(self._current), ctypes.byref(array)))
            if code:
                for done in group:
                    release_array(done)
                raise StreamError(_error_of(self._current, code))
            if not array.release:
                return group, True
            group.append(array)
            rows += int(array.length)
        return group, False

    def _names(self) -> dict[str, int]:
        """Column positions, from the current producer's schema."""
        assert self._current is not None
        schema = ArrowSchema()
        code = int(self._current.get_schema(ctypes.byref(self._current), ctypes.addressof(schema)))
        if code:
            raise StreamError(_error_of(self._current, code))
        try:
            return {
                (schema.children[i].contents.name or b"").decode(): i
                for i in range(schema.n_children)
            }
        finally:
            if schema.release:
                _SchemaRelease(schema.release)(ctypes.byref(schema))

    def _get_last_error(self, _stream: Any) -> int:
        return ctypes.addressof(self._message)

    def _release(self, stream: Any) -> None:
        while self._queue:
            release_array(self._queue.popleft())
        self._close_current()
        stream.contents.release = _Release()


class ArrowSchema(Structure):
    """`struct ArrowSchema` of the C data interface (read for column names only)."""


ArrowSchema._fields_ = [
    ("format", c_char_p),
    ("name", c_char_p),
    ("metadata", c_char_p),
    ("flags", c_int64),
    ("n_children", c_int64),
    ("children", POINTER(POINTER(ArrowSchema))),
    ("dictionary", POINTER(ArrowSchema)),
    ("release", c_void_p),
    ("private_data", c_void_p),
]
_SchemaRelease = CFUNCTYPE(None, POINTER(ArrowSchema))
_ArrayRelease = CFUNCTYPE(None, POINTER(ArrowArray))


def release_array(array: ArrowArray) -> None:
    """Release an array the caller still owns (a no-op once moved or released)."""
    if array.release:
        _ArrayRelease(array.release)(ctypes.byref(array))
