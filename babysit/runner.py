"""Headless training through a Session: what ``babysit train``, ``resume`` and ``replay`` do.

The run is recorded in the store like any other (checkpoints, events, metrics), and the loop is the
session's own ``tick()``, so a headless run and a babysat one are the same thing seen differently.
"""

import sys
import time
from dataclasses import dataclass

from babysit.session import Session, SessionSettings
from babysit.store import Store


@dataclass
class HeadlessResult:
    run_id: str
    session: Session
    stopped_by: str = None  # the guardrail's reason, when it paused the run


class Progress:
    """A progress bar on stderr (tqdm), refreshed a few times a second rather than every step."""

    def __init__(self, enabled, total, unit, start=0):
        self.bar = None
        self.done = start
        self.last = 0.0
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit=unit, file=sys.stderr, dynamic_ncols=True)

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


def drive(session, steps=None, epochs=None, progress=True):
    """Train an open session for ``steps`` more updates, until ``epochs`` passes in all, or (neither
    given) until Ctrl-C; then stop it (checkpointed, flushed). Returns the guardrail's reason, if any."""
    trainer = session.trainer
    if steps is not None:
        session.submit("step", n=steps)
        bar = Progress(progress, trainer.step_count + steps, "step", trainer.step_count)
    elif epochs is not None:
        session.submit("epochs", n=epochs)
        bar = Progress(progress, epochs, "epoch", trainer.epoch)
    else:
        session.submit("resume")
        bar = Progress(progress, None, "step", trainer.step_count)
    try:
        while True:
            record = session.tick()
            if record is None:
                break
            bar.update(trainer.step_count if epochs is None else trainer.epoch, record.cost)
    except KeyboardInterrupt:
        session.submit("pause")
        session.tick()
    finally:
        bar.close()
        session.close()
    return session.guardrail.reason if session.guardrail else None


def run_headless(config, out, steps=None, epochs=None, eval_every=50, progress=True, store=None, name=None):
    """Train ``config`` as a new stored run, then write its bundle into ``out``."""
    from babysit.export import export_run

    store = store or Store()
    session = Session.create(store, config, name, SessionSettings(eval_every=eval_every))
    stopped_by = drive(session, steps, epochs, progress)
    export_run(store, session.run_id, out)
    return HeadlessResult(session.run_id, session, stopped_by)
