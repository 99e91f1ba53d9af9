"""The learning-rate range probe: how the cost answers to alpha, from the run's current weights.

On a copy of the run, alpha grows exponentially from ``start`` to ``stop``, one update per value,

    alpha_k = start · (stop / start)^(k / (steps − 1))        k = 0 … steps − 1

with decay switched off and every other hyperparameter (the optimizer and its moments included) as
the run has them. The cost falls while alpha is useful and blows up once it is too large; a tenth
of the alpha where the smoothed cost was lowest is a rate that still learns fast but is safely below
the blow-up. The run itself is never touched.
"""

import math
from dataclasses import dataclass

import numpy as np

from babysit import checks
from babysit.errors import BabysitError, ConfigError
from babysit.trainer import Trainer

SUGGESTION_FACTOR = 10.0  # suggested alpha = the alpha at the minimum smoothed cost / this


@dataclass(frozen=True)
class ProbeResult:
    alphas: tuple  # the alpha of each probe update, growing exponentially
    costs: tuple  # the mini-batch cost measured right after the update made with that alpha
    smoothed: tuple  # bias-corrected exponentially weighted average of costs
    suggested_alpha: float
    best_alpha: float  # the alpha at the minimum smoothed cost (None if no cost was finite)
    falls: bool  # whether the smoothed cost ever went below its first value
    stopped_early: str  # why the sweep ended before its last alpha; None when it went through
    note: str  # how to read the suggestion, one sentence
    from_step: int  # updates the run had made when probed
    start_cost: float  # the mini-batch cost of the run's weights, before any probe update
    smoothing: float  # the averaging weight beta used for ``smoothed``

    def to_dict(self):
        """JSON-ready: non-finite costs (a diverged last point) become None."""
        return {
            "alphas": list(self.alphas),
            "costs": [_finite_or_none(c) for c in self.costs],
            "smoothed": [_finite_or_none(c) for c in self.smoothed],
            "suggested_alpha": self.suggested_alpha,
            "best_alpha": self.best_alpha,
            "falls": self.falls,
            "stopped_early": self.stopped_early,
            "note": self.note,
            "from_step": self.from_step,
            "start_cost": _finite_or_none(self.start_cost),
            "smoothing": self.smoothing,
        }


def _finite_or_none(x):
    return float(x) if x is not None and math.isfinite(x) else None


def alpha_grid(start, stop, steps):
    """alpha_k = start · (stop / start)^(k / (steps − 1)), k = 0 … steps − 1: equal ratios between neighbours."""
    k = np.arange(steps)
    alphas = start * (stop / start) ** (k / (steps - 1))
    alphas[-1] = stop  # exactly stop, not stop up to rounding: it must pass alpha's upper bound
    return alphas


def suggest(alphas, smoothed, start):
    """(suggested alpha, best alpha, falls): a tenth of the alpha at the minimum smoothed cost.

    When the smoothed cost never goes below its first value (or none is finite) no alpha helped: the
    suggestion is then ``start``, the smallest alpha probed, and ``falls`` is False.
    """
    values = np.asarray(smoothed, dtype=np.float64)
    finite = np.isfinite(values)
    if not finite.any():
        return float(start), None, False
    best = int(np.argmin(np.where(finite, values, np.inf)))
    if best == 0:
        return float(alphas[0]), float(alphas[0]), False
    return float(alphas[best]) / SUGGESTION_FACTOR, float(alphas[best]), True


def _check(start, stop, steps, blowup, smoothing):
    checks.collect(
        [
            ("start", lambda: checks.number("start", start, 0, 10, lo_open=True)),
            ("stop", lambda: checks.number("stop", stop, 0, 10, lo_open=True)),
            ("steps", lambda: checks.integer("steps", steps, 2)),
            ("blowup", lambda: checks.number("blowup", blowup, 1, math.inf, lo_open=True)),
            ("smoothing", lambda: checks.number("smoothing", smoothing, 0, 1, hi_open=True)),
        ]
    )
    if start >= stop:
        raise ConfigError(f"start must be below stop, got start {start!r} and stop {stop!r}")


def lr_probe(trainer, start=1e-7, stop=10.0, steps=100, blowup=4.0, smoothing=0.9):
    """Sweep alpha exponentially over ``steps`` updates of a copy of ``trainer``; return a ProbeResult.

    The copy is a new Trainer on the same data with the run's state loaded (weights, optimizer
    moments, order of examples, hyperparameters), its decay set to "none" and its recorded schedule
    dropped, so every probe update uses exactly alpha_k. ``costs[k]`` is the mini-batch cost measured
    right after the update made with ``alphas[k]`` (the next update's forward pass), so each cost
    shows what its alpha did.

    The costs are smoothed with a bias-corrected exponentially weighted average of weight
    ``smoothing`` (beta = 0.9 by default: about the last 10 updates). The sweep stops once the
    smoothed cost exceeds ``blowup`` × its lowest value so far, or a cost or weight stops being
    finite: a diverged copy is the normal end of a probe, not an error.

    Suggested alpha = (the alpha at the minimum smoothed cost) / 10. If the smoothed cost never went
    below its first value, the suggestion is ``start`` and ``falls`` is False.
    """
    _check(start, stop, steps, blowup, smoothing)
    if trainer.diverged:
        raise BabysitError(f"cannot probe a diverged run ({trainer.diverged}); restore finite weights first")
    probe = Trainer(trainer.config, data=trainer.data)
    probe.load_state_dict(trainer.state_dict())
    probe.schedule = ()  # a recorded change firing mid-sweep would override alpha_k
    grid = alpha_grid(float(start), float(stop), steps)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # blowing up is how a probe ends
        curve, start_cost = _sweep(probe, grid, _Curve(smoothing, blowup))
    suggested, best_alpha, falls = suggest(curve.alphas, curve.smoothed, float(start))
    return ProbeResult(
        alphas=tuple(curve.alphas),
        costs=tuple(curve.costs),
        smoothed=tuple(curve.smoothed),
        suggested_alpha=suggested,
        best_alpha=best_alpha,
        falls=falls,
        stopped_early=curve.stopped,
        note=_note(curve.alphas, curve.smoothed, best_alpha, falls, suggested, float(start)),
        from_step=trainer.step_count,
        start_cost=float(start_cost),
        smoothing=float(smoothing),
    )


def _sweep(probe, grid, curve):
    """One update per alpha of ``grid`` on the copy ``probe``; returns (curve, cost before the first update)."""
    start_cost = None
    for k, alpha in enumerate(grid):
        probe.set_hyperparams(decay_schedule="none", alpha=float(alpha))
        record = probe.step()  # update k; its cost measures the weights update k − 1 left
        if k == 0:
            start_cost = record.cost
            if not math.isfinite(record.cost):
                curve.stopped = f"diverged: {record.diverged}"
                break
        elif curve.add(grid[k - 1], record.cost):
            break
        if record.diverged:  # the cost was finite but update k made a weight non-finite: alpha_k broke it
            curve.add(alpha, math.inf)
            curve.stopped = f"diverged: {record.diverged}"
            break
    else:
        # what the last alpha did: one more forward pass (its update is thrown away with the copy)
        curve.add(grid[-1], probe.step().cost)
    return curve, start_cost


class _Curve:
    """(alpha, cost) points with their running smoothed cost, and the rule that ends the sweep."""

    def __init__(self, beta, blowup):
        self.beta, self.blowup = beta, blowup
        self.alphas, self.costs, self.smoothed = [], [], []
        self.avg, self.best, self.stopped = 0.0, math.inf, None

    def add(self, alpha, cost):
        """Record one point; True (with ``stopped`` set) when the sweep should end here."""
        alpha, cost = float(alpha), float(cost)
        self.alphas.append(alpha)
        self.costs.append(cost)
        if not math.isfinite(cost):
            self.smoothed.append(math.inf)
            self.stopped = f"diverged: the cost became {cost} after alpha {alpha:.3g}"
            return True
        self.avg = self.beta * self.avg + (1.0 - self.beta) * cost
        value = self.avg / (1.0 - self.beta ** len(self.costs))
        self.smoothed.append(value)
        if value > self.blowup * self.best:
            self.stopped = (
                f"blew up: the smoothed cost {value:.4g} after alpha {alpha:.3g} exceeds "
                f"{self.blowup:g} × its best {self.best:.4g}"
            )
            return True
        self.best = min(self.best, value)
        return False


def _note(alphas, smoothed, best_alpha, falls, suggested, start):
    if best_alpha is None:
        return f"no cost was finite, even at alpha {start:.3g}: suggesting the smallest alpha probed"
    if not falls:
        return (
            f"the smoothed cost never fell below its first value, even at alpha {start:.3g}: from these "
            "weights no alpha helped (converged, or start already too large); suggesting the smallest alpha probed"
        )
    if int(np.argmin(smoothed)) == len(smoothed) - 1:
        return (
            f"the cost was still falling at the largest alpha probed ({alphas[-1]:.3g}); suggesting "
            f"{suggested:.3g}, a tenth of it (a larger stop may find more)"
        )
    return f"lowest smoothed cost at alpha {best_alpha:.3g}; suggesting a tenth of it, {suggested:.3g}"
