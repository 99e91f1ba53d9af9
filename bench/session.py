"""A live session's cost: its training steps/s against the bare Trainer.step() loop, and what a
snapshot costs as the run's history grows.

    python bench/session.py [--quick] [--seconds S]

1. The same run (moons, 2-16-16-2 relu, Adam, batch 64, float64) trained for S seconds three ways,
   turn by turn, best of 3:
     bare        Trainer.step() in a loop, nothing else
     bare+eval   the same with Trainer.evaluate() as often as a session does by default
     session     a Session's own thread, started with a command: evaluations, health, guardrail,
                 checkpoints and the store's flushes (SQLite, at least once a second) included
   The floor is session / bare >= 0.95.
2. A snapshot's cost at 10^4, 10^5 and 10^6 steps of history (10^5 with --quick): the history is
   bounded, so it must not grow with the run's length. The run's resident memory is printed too.
"""

import argparse
import os
import resource
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from babysit.config import parse_config  # noqa: E402
from babysit.session import Session, SessionSettings  # noqa: E402
from babysit.store import Store  # noqa: E402
from babysit.trainer import Trainer  # noqa: E402

CONFIG = '{"data": {"name": "moons", "n_samples": 1000}, "model": {"layers": [16, 16]}}'


def bare(config, seconds, evaluate_every=None):
    trainer = Trainer(config)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(200):
            trainer.step()
            n += 1
            if evaluate_every and n % evaluate_every == 0:
                trainer.evaluate()
    return n / (time.perf_counter() - start)


def in_session(config, seconds, home):
    session = Session.create(Store(home), config, settings=SessionSettings())
    session.start_thread()
    session.submit("start")
    while session.trainer.step_count == 0:
        time.sleep(0.01)
    first, start = session.trainer.step_count, time.perf_counter()
    time.sleep(seconds)
    rate = (session.trainer.step_count - first) / (time.perf_counter() - start)
    session.close()
    return rate


def snapshot_cost(config, home, sizes):
    """Train one session synchronously and time snapshot() as its history reaches each size."""
    session = Session.create(Store(home), config, settings=SessionSettings())
    session.submit("start")
    rows = []
    for size in sizes:
        while session.trainer.step_count < size:
            session.tick()
        session.snapshot()  # folds what is pending
        start = time.perf_counter()
        for _ in range(20):
            snap = session.snapshot()
        cost = (time.perf_counter() - start) / 20
        points = sum(len(x) for x, _ in snap.series.values())
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append((size, cost, points, rss))
        print(f"  history {size:>9,} steps: snapshot {cost * 1e3:6.2f} ms, {points:,} points in all series, "
              f"peak RSS {rss:,.0f} MB", flush=True)
    session.close()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 s blocks and a 10^5-step history")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per timed block (default 5)")
    args = parser.parse_args()
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    config = parse_config(CONFIG)
    print(f"babysit session vs bare loop: moons 2-16-16-2 relu, Adam, batch 64, float64; {seconds:g} s blocks")
    best = {"bare": 0.0, "bare+eval": 0.0, "session": 0.0}
    with tempfile.TemporaryDirectory() as home:
        for _ in range(3):
            best["bare"] = max(best["bare"], bare(config, seconds))
            best["bare+eval"] = max(best["bare+eval"], bare(config, seconds, SessionSettings().eval_every))
            best["session"] = max(best["session"], in_session(config, seconds, home))
        for name, rate in best.items():
            print(f"  {name:10} {rate:>9,.0f} steps/s")
        ratio = best["session"] / best["bare"]
        print(f"  session / bare      = {ratio:.3f}  (floor 0.95: {'PASS' if ratio >= 0.95 else 'FAIL'})")
        print(f"  session / bare+eval = {best['session'] / best['bare+eval']:.3f}")
        print("snapshot cost as the history grows (it must not grow with it):")
        sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
        rows = snapshot_cost(config, home, sizes)
        growth = rows[-1][1] / rows[0][1]
        print(f"  snapshot at {sizes[-1]:,} / at {sizes[0]:,} steps = {growth:.2f}x")


if __name__ == "__main__":
    main()
