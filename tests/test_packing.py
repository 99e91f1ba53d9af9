"""Packed metric columns: every column reads back bit for bit, in fewer bytes where it repeats itself."""

import struct

import numpy as np
import pytest

from babysit.packing import MAGIC, PackingError, pack, unpack


def assert_same_bits(a, b):
    assert a.shape == b.shape
    assert a.view(np.uint64).tolist() == b.view(np.uint64).tolist()


def round_trip(block):
    block = np.asarray(block, np.float64)
    data = pack(block)
    assert_same_bits(unpack(data, block.shape[1]), block)
    return data


def epoch_columns(n, batch=64, m=800, alpha=0.01, first_step=1):
    """step, epoch, examples seen and alpha as a Trainer counts them (the last batch of a pass is the
    remainder), written out by hand."""
    step, epoch, seen, position, total = [], [], [], 0, 0
    for i in range(n):
        size = min(batch, m - position)
        total += size
        step.append(first_step + i)
        epoch.append(total // m if position + size < m else total // m - 1)
        seen.append(total)
        position = (position + size) % m
    return np.array([step, epoch, seen, [alpha] * n], np.float64)


class TestRoundTrip:
    def test_a_run_like_block_is_a_quarter_of_raw(self):
        """Five columns as a run records them: 8,000 steps in under 10 bytes a step (raw: 40)."""
        n = 8000
        cost = np.random.default_rng(0).random(n)
        block = np.vstack([epoch_columns(n), cost])
        data = round_trip(block)
        assert len(data) < 10 * n
        # the cost varies at every step: it is kept raw, 8 bytes a step and one for its kind
        assert len(pack(block[4:])) == len(MAGIC) + 1 + 1 + 8 * n

    @pytest.mark.parametrize("column, most", [
        (np.arange(1, 5001, dtype=float), 30),  # consecutive steps: first and one run of +1
        (np.full(5000, 0.01), 30),  # a constant alpha
        (np.repeat([0.01, 0.005, 0.0025], [1000, 2500, 1500]), 60),  # alpha decayed at two epochs
        (np.arange(0, 5000 * 64, 64, dtype=float), 30),  # examples seen at one batch size
    ])
    def test_repeating_columns_take_a_few_bytes(self, column, most):
        data = round_trip(column[None, :])
        assert len(data) <= most

    def test_integers_with_irregular_steps_take_a_byte_each(self):
        """Examples seen with batch sizes drawn at random from 1 to 100: one byte per step."""
        rng = np.random.default_rng(1)
        seen = np.cumsum(rng.integers(1, 101, 3000)).astype(float)
        data = round_trip(seen[None, :])
        assert len(data) <= 3000 + 20

    @pytest.mark.parametrize("values", [
        [np.nan, np.nan, 1.0, np.inf, -np.inf, np.inf],
        [0.0, -0.0, 0.0, -0.0],  # equal, but not the same bits: kept apart
        [2.0**53, 2.0**53 + 2, 2.0**60, -(2.0**53)],  # integers beyond exact counting
        [5.0, 4.0, 3.0, 10.0, 11.0, 12.0],  # steps after a rewind in one batch
        [-3.0, 2.0**40, -(2.0**40), 7.0],  # differences that need 64 bits
        [1e-300, 5e-324, -5e-324, 1e300],
        [42.0],
    ])
    def test_awkward_values_keep_their_bits(self, values):
        round_trip(np.array(values)[None, :])

    def test_nan_payloads_keep_their_bits(self):
        column = np.array([0x7FF8000000000001, 0x7FF8000000000002, 0x7FF8000000000002, 0xFFF8000000000000],
                          np.uint64).view(np.float64)
        round_trip(column[None, :])

    def test_random_mixtures(self):
        """Columns made of stretches of every kind, shuffled together: always the same bits back."""
        rng = np.random.default_rng(2)
        makers = [
            lambda k: rng.standard_normal(k),
            lambda k: np.full(k, rng.standard_normal()),
            lambda k: np.cumsum(rng.integers(-3, 4, k)).astype(float),
            lambda k: np.arange(k, dtype=float) * rng.integers(1, 1000),
            lambda k: rng.choice([np.nan, np.inf, -0.0, 0.0, 1.0], k),
        ]
        for _ in range(200):
            n = int(rng.integers(1, 300))
            rows = []
            for _ in range(int(rng.integers(1, 4))):
                parts, left = [], n
                while left:
                    k = int(rng.integers(1, left + 1))
                    parts.append(makers[int(rng.integers(len(makers)))](k))
                    left -= k
                rows.append(np.concatenate(parts))
            round_trip(np.array(rows))

    def test_no_steps(self):
        round_trip(np.empty((5, 0)))


class TestDamage:
    def test_not_a_packed_block(self):
        with pytest.raises(PackingError, match="not a packed block"):
            unpack(np.arange(10.0).tobytes(), 10)

    @pytest.mark.parametrize("cut", [1, 7, 20])
    def test_cut_short(self, cut):
        data = pack(np.vstack([epoch_columns(100), np.random.default_rng(3).random(100)]))
        with pytest.raises(PackingError, match="damaged"):
            unpack(data[:-cut], 100)

    def test_bytes_too_many(self):
        data = pack(epoch_columns(100))
        with pytest.raises(PackingError, match="1 bytes too many"):
            unpack(data + b"\0", 100)

    def test_unknown_kind(self):
        with pytest.raises(PackingError, match="unknown column kind 9"):
            unpack(MAGIC + struct.pack("<BB", 1, 9), 3)

    def test_runs_that_do_not_add_up(self):
        """A block read with the wrong number of steps is refused, not reshaped."""
        data = pack(np.full((1, 50), 0.5))
        with pytest.raises(PackingError, match="runs of 50 values where 49 were expected"):
            unpack(data, 49)


def test_a_raw_block_of_steps_never_starts_like_a_packed_one():
    """The store tells a block written before packing (raw float64, the step first) by its first four
    bytes: no step count a run can reach begins with MAGIC."""
    rng = np.random.default_rng(4)
    steps = np.concatenate([np.arange(0, 1 << 22), rng.integers(1 << 22, 1 << 51, 1_000_000)]).astype(np.float64)
    low = steps.view(np.uint64) & np.uint64(0xFFFFFFFF)  # the first four bytes, little-endian
    assert not (low == np.frombuffer(MAGIC, np.uint32)[0]).any()
