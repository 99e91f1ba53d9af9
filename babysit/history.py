"""Metric series kept for drawing, in memory bounded whatever the run's length.

A ``MinMaxSeries`` keeps at most ``capacity`` buckets of ``width`` consecutive points; each bucket
remembers its lowest and highest point (so a one-step spike stays visible, which plain striding
would drop) and its mean (for smoothing). When the buckets fill up, neighbours merge and the width
doubles. Points arrive in batches (``extend``) and are folded in with whole-array operations, so the
cost per training step is a few array elements, not a Python loop.
"""

import numpy as np

# the columns of a bucket
_MIN_X, _MIN_Y, _MAX_X, _MAX_Y, _SUM, _COUNT, _LAST_X = range(7)


class MinMaxSeries:
    def __init__(self, capacity=1024):
        self.capacity = capacity
        self.width = 1  # points per completed bucket
        self._buckets = np.empty((capacity + 1, 7))
        self._n = 0  # completed buckets
        self._tail = np.zeros(7)  # the bucket being filled (fewer than width points), as a bucket's columns
        self._last = None  # the most recent point
        self.count = 0  # points seen
        self._drawn = None  # the completed buckets' drawn points so far (_Drawn); a new one after a merge

    def extend(self, x, y):
        """Append points in increasing x; NaN values are skipped (they are gaps, e.g. no evaluation)."""
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        keep = ~np.isnan(y)
        if not keep.all():
            x, y = x[keep], y[keep]
        if x.size == 0:
            return
        self.count += x.size
        self._last = (x[-1], y[-1])
        while True:
            if self._tail[_COUNT]:  # complete the bucket being filled first
                need = self.width - int(self._tail[_COUNT])
                if x.size < need:
                    break
                if self._n == self.capacity:
                    self._merge_pairs()
                    continue
                self._absorb(x[:need], y[:need])
                x, y = x[need:], y[need:]
                self._buckets[self._n] = self._tail
                self._n += 1
                self._tail[_COUNT] = 0
            full = x.size // self.width
            room = self.capacity - self._n
            take = min(full, room)
            if take:
                self._append_buckets(x[: take * self.width], y[: take * self.width])
                x, y = x[take * self.width :], y[take * self.width :]
            if full > room:
                self._merge_pairs()
                continue
            break
        self._absorb(x, y)

    def _absorb(self, x, y):
        """Fold points into the bucket being filled (kept as a bucket, so memory stays bounded)."""
        if not x.size:
            return
        t, empty = self._tail, not self._tail[_COUNT]
        lo, hi = int(y.argmin()), int(y.argmax())
        if empty or y[lo] < t[_MIN_Y]:
            t[_MIN_X], t[_MIN_Y] = x[lo], y[lo]
        if empty or y[hi] > t[_MAX_Y]:
            t[_MAX_X], t[_MAX_Y] = x[hi], y[hi]
        t[_SUM] = (0.0 if empty else t[_SUM]) + y.sum()
        t[_COUNT] += x.size
        t[_LAST_X] = x[-1]

    def _append_buckets(self, x, y):
        k = x.size // self.width
        xs, ys = x.reshape(k, self.width), y.reshape(k, self.width)
        rows = np.arange(k)
        lo, hi = ys.argmin(axis=1), ys.argmax(axis=1)
        out = self._buckets[self._n : self._n + k]
        out[:, _MIN_X], out[:, _MIN_Y] = xs[rows, lo], ys[rows, lo]
        out[:, _MAX_X], out[:, _MAX_Y] = xs[rows, hi], ys[rows, hi]
        out[:, _SUM], out[:, _COUNT], out[:, _LAST_X] = ys.sum(axis=1), self.width, xs[:, -1]
        self._n += k

    def _merge_pairs(self):
        """Halve the number of buckets by merging neighbours; an odd last bucket goes back to the tail."""
        n = self._n - (self._n % 2)
        a, b = self._buckets[0:n:2], self._buckets[1:n:2]
        merged = a.copy()
        b_lower, b_higher = b[:, _MIN_Y] < a[:, _MIN_Y], b[:, _MAX_Y] > a[:, _MAX_Y]
        merged[b_lower, _MIN_X], merged[b_lower, _MIN_Y] = b[b_lower, _MIN_X], b[b_lower, _MIN_Y]
        merged[b_higher, _MAX_X], merged[b_higher, _MAX_Y] = b[b_higher, _MAX_X], b[b_higher, _MAX_Y]
        merged[:, _SUM] += b[:, _SUM]
        merged[:, _COUNT] += b[:, _COUNT]
        merged[:, _LAST_X] = b[:, _LAST_X]
        if self._n % 2:
            # an unpaired bucket cannot be split back into points: keep it as its own merged bucket
            merged = np.vstack([merged, self._buckets[self._n - 1 : self._n]])
        self._buckets[: len(merged)] = merged
        self._n = len(merged)
        self.width *= 2
        self._drawn = None  # drawn points handed out before stay as they were: their buffers are not reused

    def points(self):
        """(x, y): each bucket's min and max point in x order, then the tail's and the newest point;
        at most 2·capacity + 3."""
        return points_of([self])[0]

    def means(self):
        """(x, mean): one point per bucket (at its last x) and the tail's mean; for smoothing."""
        b = self._buckets[: self._n]
        x, y = b[:, _LAST_X].copy(), b[:, _SUM] / b[:, _COUNT]  # a copy: the buckets change later
        if self._tail[_COUNT]:
            x = np.append(x, self._tail[_LAST_X])
            y = np.append(y, self._tail[_SUM] / self._tail[_COUNT])
        return x, y

    def last(self):
        """The most recent point, or None."""
        return self._last

    def nbytes(self):
        drawn = 0 if self._drawn is None else self._drawn.x.nbytes + self._drawn.y.nbytes
        return self._buckets.nbytes + self._tail.nbytes + drawn


def points_of(many):
    """``[s.points() for s in many]``, at a cost that does not grow with the series' length. A
    snapshot draws some twenty series several times a second. A completed bucket's points do not
    change until the buckets merge, so each is worked out once, into a buffer whose filled part is
    never written again (the arrays returned are read-only views of it); and the buckets completed
    since the last call, of all the series at once, go through one set of whole-array operations."""
    new = []
    for s in many:
        if s._drawn is None:
            s._drawn = _Drawn(2 * s.capacity + 2)
        if s._drawn.buckets < s._n:
            new.append((s, s._buckets[s._drawn.buckets : s._n]))
    if new:
        for (s, _), (x, y) in zip(new, _ordered_points([b for _, b in new]), strict=True):
            s._drawn.add(s._n, x, y)
    drawn = []
    for s in many:
        n = s._drawn.points
        x, y = s._drawn.x[:n], s._drawn.y[:n]
        t, extra = s._tail, []
        if t[_COUNT]:  # the bucket being filled: its lowest and highest point, in x order, once if one
            low, high = (t[_MIN_X], t[_MIN_Y]), (t[_MAX_X], t[_MAX_Y])
            extra = [low] if low[0] == high[0] else sorted([low, high])
        newest = extra[-1][0] if extra else x[-1] if n else None
        if s._last is not None and (newest is None or newest < s._last[0]):
            extra.append(s._last)  # the newest point too, so a drawn line reaches the current step
        if extra:
            x = np.concatenate([x, [px for px, _ in extra]])
            y = np.concatenate([y, [py for _, py in extra]])
        x.flags.writeable = y.flags.writeable = False  # a view of the buffer must not be written through
        drawn.append((x, y))
    return drawn


class _Drawn:
    """A series' drawn points of its first ``buckets`` completed buckets: ``points`` of them at the
    front of the x and y buffers. Only ever appended to, so views of the filled part never change."""

    __slots__ = ("x", "y", "buckets", "points")

    def __init__(self, size):
        self.x, self.y = np.empty(size), np.empty(size)
        self.buckets = self.points = 0

    def add(self, buckets, x, y):
        """The points of the buckets up to ``buckets``, those after the ones held."""
        end = self.points + len(x)
        self.x[self.points : end], self.y[self.points : end] = x, y
        self.buckets, self.points = buckets, end


def _ordered_points(blocks):
    """For blocks of buckets, each bucket's lowest and highest point in x order (once if they are one
    point), as (x, y) per block; all blocks in one set of 1-D whole-array operations."""
    b = np.concatenate(blocks)
    swap = b[:, _MIN_X] > b[:, _MAX_X]  # the bucket's highest point came first
    x, y = np.empty((len(b), 2)), np.empty((len(b), 2))
    x[:, 0], x[:, 1] = np.where(swap, b[:, _MAX_X], b[:, _MIN_X]), np.where(swap, b[:, _MIN_X], b[:, _MAX_X])
    y[:, 0], y[:, 1] = np.where(swap, b[:, _MAX_Y], b[:, _MIN_Y]), np.where(swap, b[:, _MIN_Y], b[:, _MAX_Y])
    two = b[:, _MIN_X] != b[:, _MAX_X]  # a bucket of one point, or of equal values, lists it once
    keep = np.ones((len(b), 2), bool)
    keep[:, 1] = two
    x, y = x[keep], y[keep]
    ends = np.cumsum([len(block) for block in blocks])  # in buckets; in points, add the second ones before
    ends = ends + np.concatenate([[0], np.cumsum(two)])[ends]
    return [(x[start:stop], y[start:stop]) for start, stop in zip([0, *ends[:-1]], ends, strict=True)]
