"""What a run records besides its metrics: hyperparameter changes, pauses, rewinds, guardrails.

Every event is stamped with where the run stood when it happened: ``step`` = updates completed, so
a change recorded at step s takes effect from update s + 1 (the convention of a config's
``schedule``, whose entry ``{"step": s + 1, "set": …}`` replays it).
"""

import dataclasses
import time
from dataclasses import dataclass, field

KINDS = ("start", "change", "pause", "resume", "rewind", "branch", "guardrail", "stop", "error", "probe",
         "retest", "recovered")
SOURCES = ("user", "guardrail", "schedule", "system")


@dataclass(frozen=True)
class Event:
    kind: str  # one of KINDS
    step: int  # updates completed when it took effect
    epoch: int = 0
    examples_seen: int = 0
    source: str = "user"  # who asked: user, guardrail, schedule or system
    changes: dict = field(default_factory=dict)  # {name: [old, new]} for a change
    message: str = ""
    time: float = field(default_factory=time.time)
    undone: bool = False  # rewound past: kept in the log, no longer part of the run's timeline

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["changes"] = {k: list(v) for k, v in self.changes.items()}
        return d

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        d["changes"] = {k: list(v) for k, v in d.get("changes", {}).items()}
        return cls(**d)

    def describe(self):
        """One line for a log or a chart's hover text: ``alpha 0.01 → 0.003 at step 1,200``."""
        if self.kind == "change":
            parts = ", ".join(f"{name} {_fmt(old)} → {_fmt(new)}" for name, (old, new) in self.changes.items())
            text = f"{parts} at step {self.step:,}"
            return text if self.source == "user" else f"{text} ({self.source})"
        text = f"{self.kind} at step {self.step:,}"
        return f"{text}: {self.message}" if self.message else text


def _fmt(value):
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def schedule_from_events(events):
    """The config ``schedule`` that replays a run's applied changes, in order.

    Changes made between the same two updates share one entry, unless they touch the same name
    twice (adam → gd → adam resets the optimizer twice): then each keeps its own entry, in order."""
    entries = []
    for event in events:
        if event.kind != "change" or event.undone:
            continue
        settings = {name: new for name, (_, new) in event.changes.items()}
        last = entries[-1] if entries else None
        if last and last["step"] == event.step + 1 and not settings.keys() & last["set"].keys():
            last["set"].update(settings)
        else:
            entries.append({"step": event.step + 1, "set": settings})
    return entries
