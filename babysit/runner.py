"""Headless training into a folder: what ``babysit train`` does."""

import os
import sys
import time
from dataclasses import dataclass, field

from babysit.export import MetricsWriter, write_text, write_weights
from babysit.trainer import Trainer


@dataclass
class HeadlessResult:
    trainer: Trainer
    evaluations: list = field(default_factory=list)
    diverged: str = None


class _Progress:
    """A progress bar on stderr (tqdm), refreshed a few times a second rather than every step."""

    def __init__(self, enabled, total, unit):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=True)
        self.done = 0
        self.last = 0.0

    def update(self, done, cost):
        if self.bar is None:
            return
        now = time.monotonic()
        if now - self.last > 0.2 or done == self.bar.total:
            self.bar.update(done - self.done)
            self.bar.set_postfix(cost=f"{cost:.4f}", refresh=False)
            self.done, self.last = done, now

    def close(self):
        if self.bar is not None:
            self.bar.close()


def run_headless(config, out, steps=None, epochs=None, eval_every=50, progress=True):
    """Train ``config`` for ``steps`` updates or ``epochs`` passes, writing the run's files to ``out``:
    config.json (resolved), weights-initial.npz, metrics.csv (streamed) and weights-final.npz.
    A diverged run stops there, its metrics kept; weights-final.npz then holds the last finite weights
    only if they are finite."""
    if (steps is None) == (epochs is None):
        raise ValueError("give exactly one of steps and epochs")
    trainer = Trainer(config)  # loads the data first: a bad data set leaves no folder behind
    os.makedirs(out, exist_ok=True)
    write_text(os.path.join(out, "config.json"), config.to_json())
    write_weights(os.path.join(out, "weights-initial.npz"), trainer.initial_weights)
    result = HeadlessResult(trainer)
    bar = _Progress(progress, steps if steps else epochs, "step" if steps else "epoch")
    try:
        with MetricsWriter(os.path.join(out, "metrics.csv")) as metrics:
            while (trainer.step_count < steps) if steps else (trainer.epoch < epochs):
                record = trainer.step()
                if record.diverged:
                    metrics.write(record)
                    result.diverged = record.diverged
                    break
                last = (trainer.step_count == steps) if steps else (trainer.epoch == epochs)
                evaluation = None
                if record.step % eval_every == 0 or last:
                    evaluation = trainer.evaluate()
                    result.evaluations.append(evaluation)
                metrics.write(record, evaluation)
                bar.update(trainer.step_count if steps else trainer.epoch, record.cost)
    finally:
        bar.close()
    if not result.diverged or trainer.model.params.sum() == trainer.model.params.sum():  # not NaN
        write_weights(os.path.join(out, "weights-final.npz"), trainer.model.weights())
    return result
