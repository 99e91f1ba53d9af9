"""Learning-rate decay schedules against their formulas."""

import math

import pytest

from models import schedules
from models.schedules import SCHEDULES, STAIRCASE_EPOCHS, alpha_at

EPOCHS = [0, 1, 2, 3, 7, 9, 10, 11, 19, 20, 29, 30, 55, 100]
ALPHA = 0.03


def test_schedule_names():
    """SCHEDULES holds exactly the four schedules."""
    assert set(SCHEDULES) == {"inverse_time", "exponential", "staircase", "none"}


@pytest.mark.parametrize("rate", [0.0, 0.1, 1.5])
@pytest.mark.parametrize("epoch", EPOCHS)
def test_inverse_time(epoch, rate):
    """alpha / (1 + rate · epoch)."""
    assert schedules.inverse_time(ALPHA, epoch, rate) == pytest.approx(ALPHA / (1 + rate * epoch), rel=1e-15)


@pytest.mark.parametrize("rate", [0.5, 0.95, 1.0])
@pytest.mark.parametrize("epoch", EPOCHS)
def test_exponential(epoch, rate):
    """alpha · rate^epoch."""
    assert schedules.exponential(ALPHA, epoch, rate) == pytest.approx(ALPHA * rate**epoch, rel=1e-15)


@pytest.mark.parametrize("rate", [0.5, 0.95, 1.0])
@pytest.mark.parametrize("epoch", EPOCHS)
def test_staircase(epoch, rate):
    """alpha · rate^floor(epoch / 10)."""
    expected = ALPHA * rate ** math.floor(epoch / STAIRCASE_EPOCHS)
    assert schedules.staircase(ALPHA, epoch, rate) == pytest.approx(expected, rel=1e-15)


def test_staircase_steps():
    """Constant within each block of ten epochs, dropping by ``rate`` at 10, 20, …."""
    assert STAIRCASE_EPOCHS == 10
    values = [schedules.staircase(1.0, e, 0.5) for e in range(31)]
    assert values[:10] == [1.0] * 10
    assert values[10:20] == [0.5] * 10
    assert values[20:30] == [0.25] * 10
    assert values[30] == 0.125


@pytest.mark.parametrize("epoch", EPOCHS)
def test_none(epoch):
    """alpha whatever the epoch and rate."""
    assert schedules.none(ALPHA, epoch, 0.5) == ALPHA


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_epoch_zero_gives_alpha(name):
    """Every schedule starts at the base rate."""
    for rate in (0.5, 0.9, 1.0):
        assert SCHEDULES[name](ALPHA, 0, rate) == pytest.approx(ALPHA, rel=1e-15)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_alpha_at_dispatches_by_name(name):
    """alpha_at(name, …) is SCHEDULES[name](…)."""
    for epoch in EPOCHS:
        assert alpha_at(name, ALPHA, epoch, 0.7) == SCHEDULES[name](ALPHA, epoch, 0.7)


def test_alpha_at_values():
    """Spot values by hand for each schedule at epoch 12, rate 0.5."""
    assert alpha_at("inverse_time", 0.1, 12, 0.5) == pytest.approx(0.1 / 7)
    assert alpha_at("exponential", 0.1, 12, 0.5) == pytest.approx(0.1 / 4096)
    assert alpha_at("staircase", 0.1, 12, 0.5) == pytest.approx(0.05)
    assert alpha_at("none", 0.1, 12, 0.5) == 0.1


def test_alpha_at_unknown_name():
    """An unknown schedule name is refused."""
    with pytest.raises(KeyError):
        alpha_at("cosine", 0.1, 3, 0.5)
