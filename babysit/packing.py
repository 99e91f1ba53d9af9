"""Per-step metric columns packed small, losslessly, for the run store.

A run at full speed records some 16,000 steps a second; as raw float64 its five per-step columns
(step, epoch, examples seen, alpha, cost) take 40 bytes a step, 2.3 GB an hour. Only the cost varies
from step to step. The others are integers that move by the same amount for many steps in a row
(step by 1, examples seen by the batch size) or values that stay put for many steps (alpha, epoch).
Each column is stored the smallest of these ways, and every way reads back bit for bit:

    raw          n float64
    runs         the column's distinct consecutive values (compared bit for bit) and how many times each repeats
    deltas       integers: the first, then the n - 1 differences in the narrowest integer type that holds them
    delta runs   integers: the first, then the differences as runs

so a moons run's columns take about 10 bytes a step.

A packed block starts with MAGIC. ``unpack`` is given the number of steps, which the store keeps
beside the block.
"""

import struct

import numpy as np

MAGIC = b"BSK1"
RAW, RUNS, DELTAS, DELTA_RUNS = range(4)
_WIDTHS = (np.int8, np.int16, np.int32, np.int64)
_WIDTH_OF_SIZE = {np.dtype(w).itemsize: w for w in _WIDTHS}
_EXACT = 2.0**53  # integers up to here are exact in float64


class PackingError(ValueError):
    pass


def pack(block):
    """bytes for ``block``, a (columns, n) float64 array."""
    block = np.asarray(block, np.float64)
    parts = [MAGIC, struct.pack("<B", block.shape[0])]
    for column in block:
        parts.append(min(_encodings(np.ascontiguousarray(column)), key=len))
    return b"".join(parts)


def unpack(data, n):
    """The (columns, n) float64 array that ``pack`` was given; PackingError if ``data`` is not one."""
    view = memoryview(data)
    if bytes(view[:4]) != MAGIC or len(view) < 5:
        raise PackingError("not a packed block")
    k, at = view[4], 5
    block = np.empty((k, n))
    try:
        for i in range(k):
            block[i], at = _decode(view, at, n)
    except (struct.error, ValueError) as error:
        raise PackingError(f"a damaged packed block: {error}") from None
    if at != len(view):
        raise PackingError(f"a packed block with {len(view) - at} bytes too many")
    return block


def _encodings(x):
    n = x.size
    yield struct.pack("<B", RAW) + x.tobytes()
    if not n:
        return
    starts, lengths = _runs(x.view(np.uint64))
    yield struct.pack("<BI", RUNS, len(lengths)) + x[starts].tobytes() + lengths.tobytes()
    integers = _as_integers(x)
    if integers is not None and n > 1:
        steps = np.diff(integers)
        width = next(w for w in _WIDTHS if np.iinfo(w).min <= steps.min() and steps.max() <= np.iinfo(w).max)
        yield struct.pack("<BqB", DELTAS, integers[0], np.dtype(width).itemsize) + steps.astype(width).tobytes()
        starts, lengths = _runs(steps)
        yield struct.pack("<BqI", DELTA_RUNS, integers[0], len(lengths)) + steps[starts].tobytes() + lengths.tobytes()


def _runs(x):
    """Where each run of equal values starts, and its length (uint32)."""
    starts = np.flatnonzero(np.concatenate([[True], x[1:] != x[:-1]]))
    lengths = np.diff(np.append(starts, x.size)).astype(np.uint32)
    return starts, lengths


def _as_integers(x):
    """x as int64 when every value is an integer float64 holds exactly (and not -0.0), else None."""
    if not x.size or not (np.abs(x) <= _EXACT).all():  # NaN fails this too
        return None
    integers = x.astype(np.int64)
    if not np.array_equal(integers.astype(np.float64).view(np.uint64), x.view(np.uint64)):
        return None
    return integers


def _decode(view, at, n):
    (kind,) = struct.unpack_from("<B", view, at)
    at += 1
    if kind == RAW:
        return np.frombuffer(view, np.float64, n, at), at + 8 * n
    if kind == RUNS:
        (r,) = struct.unpack_from("<I", view, at)
        values = np.frombuffer(view, np.float64, r, at + 4)
        lengths = np.frombuffer(view, np.uint32, r, at + 4 + 8 * r)
        return _repeat(values, lengths, n), at + 4 + 12 * r
    if kind == DELTAS:
        first, size = struct.unpack_from("<qB", view, at)
        width = _WIDTH_OF_SIZE.get(size)
        if width is None:
            raise ValueError(f"no integer type of {size} bytes")
        steps = np.frombuffer(view, width, n - 1, at + 9)
        return _from_steps(first, steps), at + 9 + size * (n - 1)
    if kind == DELTA_RUNS:
        first, r = struct.unpack_from("<qI", view, at)
        values = np.frombuffer(view, np.int64, r, at + 12)
        lengths = np.frombuffer(view, np.uint32, r, at + 12 + 8 * r)
        return _from_steps(first, _repeat(values, lengths, n - 1)), at + 12 + 12 * r
    raise ValueError(f"unknown column kind {kind}")


def _repeat(values, lengths, n):
    total = int(lengths.sum(dtype=np.int64))
    if total != n:
        raise ValueError(f"runs of {total} values where {n} were expected")
    return np.repeat(values, lengths)


def _from_steps(first, steps):
    integers = np.empty(steps.size + 1, np.int64)
    integers[0] = first
    np.cumsum(steps, dtype=np.int64, out=integers[1:])
    integers[1:] += first
    return integers.astype(np.float64)
