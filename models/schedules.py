"""Learning-rate decay as pure functions of (alpha, epoch, rate).

``epoch`` is the number of passes over the training set completed before the update (0 during the
first pass) and ``alpha`` the base rate as currently set, so a live change to any of the three is
just another call.
"""

import math

STAIRCASE_EPOCHS = 10  # the staircase drops once every this many epochs


def inverse_time(alpha, epoch, rate):
    """alpha / (1 + rate · epoch): the course's decay."""
    return alpha / (1.0 + rate * epoch)


def exponential(alpha, epoch, rate):
    """alpha · rate^epoch, with rate in (0, 1]."""
    return alpha * rate**epoch


def staircase(alpha, epoch, rate):
    """alpha · rate^floor(epoch / 10): a constant rate that drops by the factor ``rate`` every 10 epochs."""
    return alpha * rate ** math.floor(epoch / STAIRCASE_EPOCHS)


def none(alpha, epoch, rate):
    """alpha: no decay."""
    return alpha


SCHEDULES = {
    "inverse_time": inverse_time,
    "exponential": exponential,
    "staircase": staircase,
    "none": none,
}

# Schedules whose rate is a factor per epoch (must lie in (0, 1]) rather than a speed (>= 0).
MULTIPLICATIVE = frozenset({"exponential", "staircase"})


def alpha_at(schedule, alpha, epoch, rate):
    """The rate in force for an update made during ``epoch`` under the named schedule."""
    return SCHEDULES[schedule](alpha, epoch, rate)
