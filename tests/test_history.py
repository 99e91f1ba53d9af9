"""MinMaxSeries: bounded, spike-keeping downsampling of a metric series for drawing."""

import numpy as np
import pytest

from babysit.history import MinMaxSeries, points_of


def feed(series, x, y, rng, max_batch=5000):
    """Give the series x, y in batches of random sizes (as a session's flushes do)."""
    i = 0
    while i < x.size:
        k = int(rng.integers(1, max_batch))
        series.extend(x[i : i + k], y[i : i + k])
        i += k


def uneven_x(n, rng):
    """Strictly increasing, unevenly spaced x values."""
    return np.cumsum(rng.integers(1, 5, n)).astype(np.float64)


def lookup(x_in, y_in, x_out):
    """The input y at each x_out (x_in strictly increasing); fails if an x_out is not an input x."""
    i = np.searchsorted(x_in, x_out)
    assert np.all(i < x_in.size)
    np.testing.assert_array_equal(x_in[i], x_out)
    return y_in[i]


class TestSpikes:
    def test_one_high_spike_among_1e5_survives(self):
        """A single point far above 10^5 others is among the drawn points, at its x and y."""
        rng = np.random.default_rng(0)
        n = 100_000
        x = np.arange(1, n + 1, dtype=np.float64)
        y = rng.random(n)
        y[61_234] = 50.0
        s = MinMaxSeries(64)
        feed(s, x, y, rng)
        px, py = s.points()
        hit = px == x[61_234]
        assert hit.sum() == 1
        assert py[hit][0] == 50.0
        assert len(px) <= 2 * 64 + 3  # downsampled all the same

    def test_one_low_spike_survives(self):
        """A single point far below the others is kept as well."""
        rng = np.random.default_rng(1)
        n = 100_000
        x = np.arange(1, n + 1, dtype=np.float64)
        y = rng.random(n) + 1
        y[777] = -3.0
        s = MinMaxSeries(32)
        feed(s, x, y, rng)
        px, py = s.points()
        assert (778.0, -3.0) in set(zip(px.tolist(), py.tolist(), strict=True))

    def test_min_and_max_of_the_whole_series_are_drawn(self):
        """The global min and max of a random series are always among the points."""
        rng = np.random.default_rng(2)
        x = uneven_x(30_000, rng)
        y = rng.standard_normal(30_000)
        s = MinMaxSeries(16)
        feed(s, x, y, rng, max_batch=700)
        px, py = s.points()
        assert py.max() == y.max() and py.min() == y.min()
        assert px[py.argmax()] == x[y.argmax()] and px[py.argmin()] == x[y.argmin()]


class TestBounds:
    def test_points_bounded_for_1e6_points(self):
        """10^6 points fed in random-size batches never give more than 2·capacity + 3 points."""
        rng = np.random.default_rng(3)
        capacity = 100
        s = MinMaxSeries(capacity)
        i, n = 0, 1_000_000
        x = np.arange(1, n + 1, dtype=np.float64)
        y = rng.standard_normal(n)
        while i < n:
            k = int(rng.integers(1, 20_000))
            s.extend(x[i : i + k], y[i : i + k])
            i += k
            assert len(s.points()[0]) <= 2 * capacity + 3
            assert len(s.means()[0]) <= capacity + 1
        assert s.count == n

    def test_memory_does_not_grow(self):
        """nbytes after 10^6 points is no more than after 10^4 (the capacity sets it, not the length)."""
        rng = np.random.default_rng(4)
        for capacity in (64, 1024):
            s = MinMaxSeries(capacity)
            x = np.arange(1, 1_000_001, dtype=np.float64)
            y = rng.standard_normal(x.size)
            feed(s, x[:10_000], y[:10_000], rng)
            small = s.nbytes()
            sizes = []
            for start in range(10_000, x.size, 99_000):
                feed(s, x[start : start + 99_000], y[start : start + 99_000], rng)
                sizes.append(s.nbytes())
            assert s.count == x.size
            assert max(sizes) <= small, (capacity, small, sizes)

    @pytest.mark.parametrize("capacity", [1, 2, 3, 7])
    def test_tiny_capacities(self, capacity):
        """Even a capacity of 1, 2, 3 or 7 stays bounded and keeps the first, last and extreme points."""
        rng = np.random.default_rng(capacity)
        x = np.arange(1, 5001, dtype=np.float64)
        y = rng.standard_normal(x.size)
        s = MinMaxSeries(capacity)
        feed(s, x, y, rng, max_batch=300)
        px, py = s.points()
        assert len(px) <= 2 * capacity + 3
        assert np.all(np.diff(px) > 0)
        assert py.max() == y.max() and py.min() == y.min()
        np.testing.assert_array_equal(lookup(x, y, px), py)


class TestFaithful:
    def test_x_strictly_increasing_and_y_are_inputs(self):
        """Drawn x are strictly increasing and every y is the input's value at that x."""
        rng = np.random.default_rng(5)
        for capacity in (8, 64, 1000):
            x = uneven_x(200_000, rng)
            y = rng.standard_normal(x.size)
            s = MinMaxSeries(capacity)
            feed(s, x, y, rng)
            px, py = s.points()
            assert np.all(np.diff(px) > 0)
            np.testing.assert_array_equal(lookup(x, y, px), py)

    @pytest.mark.parametrize("shape", ["rising", "falling", "flat", "steps", "zigzag"])
    def test_each_bucket_drawn_in_x_order_whatever_the_shape(self, shape):
        """A bucket whose highest point comes first (falling), or whose lowest and highest are one point
        (flat: every value equal), is still drawn left to right, once per point, with input values;
        the whole series' extremes are among them. Checked at every length as the buckets fill and merge."""
        rng = np.random.default_rng(7)
        x = np.arange(1, 30_001, dtype=np.float64)
        y = {"rising": x / 7, "falling": -x / 7, "flat": np.full(x.size, 0.25),
             "steps": np.floor(x / 300), "zigzag": np.where(x % 2 == 0, 1.0, -1.0)}[shape]
        s = MinMaxSeries(64)
        i = 0
        while i < x.size:
            k = int(rng.integers(1, 700))
            s.extend(x[i : i + k], y[i : i + k])
            i = min(i + k, x.size)
            px, py = s.points()
            assert np.all(np.diff(px) > 0), (shape, i)
            np.testing.assert_array_equal(lookup(x, y, px), py)
            assert py.max() == y[:i].max() and py.min() == y[:i].min()
            assert px[0] == 1 and px[-1] == x[i - 1]

    def test_first_and_last_points_kept(self):
        """A falling cost curve is drawn from its very first point to its very latest one."""
        rng = np.random.default_rng(6)
        x = uneven_x(123_457, rng)
        y = 1.0 / np.sqrt(x) * (1 + 0.01 * rng.random(x.size))  # noisy but falling: first is the max
        y[-1] = y.min() / 2  # and the newest is a new low
        s = MinMaxSeries(50)
        feed(s, x, y, rng)
        px, py = s.points()
        assert (px[0], py[0]) == (x[0], y[0])
        assert (px[-1], py[-1]) == (x[-1], y[-1])
        assert s.last() == (x[-1], y[-1])
        mx, _ = s.means()
        assert mx[-1] == x[-1]

    def test_drawn_points_span_the_input(self):
        """Whatever the values, the drawn x lie within the input's range and last() is the newest point."""
        rng = np.random.default_rng(9)
        x = uneven_x(54_321, rng)
        y = rng.standard_normal(x.size)
        s = MinMaxSeries(16)
        feed(s, x, y, rng)
        px, _ = s.points()
        assert x[0] <= px[0] and px[-1] <= x[-1]
        assert s.last() == (x[-1], y[-1])

    def test_last_is_latest_point_when_no_partial_bucket(self):
        """last() is the newest point even when the points fill whole buckets exactly."""
        s = MinMaxSeries(4)
        x = np.arange(1, 17, dtype=np.float64)
        y = np.array([5.0, 1.0, 9.0, 3.0] * 4)  # the newest point (16, 3) is neither a bucket's min nor max
        s.extend(x, y)
        assert s.last() == (16.0, 3.0)

    def test_few_points_all_kept(self):
        """While there are fewer points than the capacity, every point is drawn as given."""
        s = MinMaxSeries(100)
        x = np.arange(1, 51, dtype=np.float64)
        y = np.sin(x)
        s.extend(x[:20], y[:20])
        s.extend(x[20:], y[20:])
        px, py = s.points()
        np.testing.assert_array_equal(px, x)
        np.testing.assert_array_equal(py, y)

    def test_means_are_true_bucket_means(self):
        """Each means() value is the mean of the input points in its bucket (computed independently)."""
        rng = np.random.default_rng(7)
        for capacity in (5, 64):
            x = uneven_x(100_003, rng)
            y = rng.standard_normal(x.size) * 3 + np.linspace(0, 10, x.size)
            s = MinMaxSeries(capacity)
            feed(s, x, y, rng)
            mx, my = s.means()
            assert np.all(np.diff(mx) > 0) and mx[-1] == x[-1]
            ends = np.searchsorted(x, mx, side="right")  # bucket i holds x in (mx[i-1], mx[i]]
            starts = np.concatenate([[0], ends[:-1]])
            assert np.all(ends > starts)
            expected = np.array([y[a:b].mean() for a, b in zip(starts, ends, strict=True)])
            np.testing.assert_allclose(my, expected, rtol=1e-12, atol=1e-12)
            # and every point's bucket holds its min and max point
            px, py = s.points()
            for a, b in zip(starts, ends, strict=True):
                inside = (px >= x[a]) & (px <= x[b - 1])
                assert py[inside].max() == y[a:b].max() and py[inside].min() == y[a:b].min()


class TestNaN:
    def test_nans_skipped(self):
        """NaN values are gaps: never drawn, not counted, not in the means."""
        rng = np.random.default_rng(8)
        x = np.arange(1, 50_001, dtype=np.float64)
        y = rng.standard_normal(x.size)
        y[rng.random(x.size) < 0.3] = np.nan
        y[-1] = np.nan
        s = MinMaxSeries(32)
        feed(s, x, y, rng)
        px, py = s.points()
        assert not np.isnan(py).any()
        assert s.count == int((~np.isnan(y)).sum())
        np.testing.assert_array_equal(lookup(x, y, px), py)
        mx, my = s.means()
        assert not np.isnan(my).any()
        last_valid = np.flatnonzero(~np.isnan(y))[-1]
        assert mx[-1] == x[last_valid]
        assert s.last() == (x[last_valid], y[last_valid])
        ends = np.searchsorted(x, mx, side="right")
        starts = np.concatenate([[0], ends[:-1]])
        np.testing.assert_allclose(my, [np.nanmean(y[a:b]) for a, b in zip(starts, ends, strict=True)],
                                   rtol=1e-12)

    def test_all_nan_batch_changes_nothing(self):
        """A batch of only NaN (no evaluation in it) adds nothing."""
        s = MinMaxSeries(8)
        s.extend([1.0, 2.0], [0.5, 0.25])
        s.extend([3.0, 4.0], [np.nan, np.nan])
        s.extend([], [])
        assert s.count == 2
        assert s.last() == (2.0, 0.25)
        np.testing.assert_array_equal(s.points()[0], [1.0, 2.0])

    def test_empty_series(self):
        """A new series has no points, no means and no last point."""
        s = MinMaxSeries(8)
        assert s.count == 0 and s.last() is None
        assert s.points()[0].size == 0 and s.means()[0].size == 0


class TestCopies:
    def test_returned_arrays_do_not_change_later(self):
        """points() and means() return copies: feeding more points leaves earlier results as they were."""
        s = MinMaxSeries(4)
        s.extend(np.arange(1, 5, dtype=np.float64), np.arange(4, dtype=np.float64))  # four full buckets, no tail
        (px, py), (mx, my) = s.points(), s.means()
        kept = [a.copy() for a in (px, py, mx, my)]
        s.extend(np.arange(5, 41, dtype=np.float64), np.zeros(36))  # merges rewrite the buckets
        for before, now in zip(kept, (px, py, mx, my), strict=True):
            np.testing.assert_array_equal(now, before)

    def test_points_do_not_change_as_buckets_are_added(self):
        """Between merges the drawn points are kept and extended, not worked out again: what an
        earlier call returned stays as it was, and cannot be written to."""
        rng = np.random.default_rng(8)
        s = MinMaxSeries(1024)
        x = np.arange(1, 3001, dtype=np.float64)
        y = rng.standard_normal(x.size)
        s.extend(x[:1000], y[:1000])
        px, py = s.points()
        kept = px.copy(), py.copy()
        s.extend(x[1000:1024], y[1000:1024])  # more buckets, no merge yet
        np.testing.assert_array_equal(px, kept[0])
        np.testing.assert_array_equal(py, kept[1])
        qx, qy = s.points()
        np.testing.assert_array_equal(qx, x[:1024])  # one point per bucket: every point, in order
        np.testing.assert_array_equal(qy, y[:1024])
        with pytest.raises(ValueError, match="read-only"):
            qy[0] = 99.0
        s.extend(x[1024:], y[1024:])  # merges
        np.testing.assert_array_equal(qy, y[:1024])

    def test_many_series_at_once_are_each_drawn_as_alone(self):
        """points_of(series) gives each series what its own points() gives, whatever their lengths
        and shapes, including empty ones; and asking again, after more points, still does."""
        rng = np.random.default_rng(9)
        sizes = [0, 1, 7, 1024, 1025, 5000, 123_457]
        many, twins = [MinMaxSeries(64) for _ in sizes], [MinMaxSeries(64) for _ in sizes]
        for _ in range(3):
            for n, s, t in zip(sizes, many, twins, strict=True):
                start = s.count + 1
                x = np.arange(start, start + n, dtype=np.float64)
                y = np.round(rng.standard_normal(n), 1)  # ties, so some buckets hold equal values
                s.extend(x, y)
                t.extend(x, y)
            for (gx, gy), t in zip(points_of(many), twins, strict=True):
                tx, ty = t.points()
                np.testing.assert_array_equal(gx, tx)
                np.testing.assert_array_equal(gy, ty)
