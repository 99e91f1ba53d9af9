"""A live session's cost: its training steps/s against the bare Trainer.step() loop, and what a
snapshot costs as the run's history grows.

    python bench/session.py [--quick] [--seconds S] [--rounds R]

1. The same run (moons, 2-16-16-2 relu, Adam, batch 64, float64) trained for S seconds two ways:
     bare        Trainer.step() in a loop, nothing else
     session     a Session's own thread, started with a command: evaluations, health, guardrail,
                 checkpoints and the store's flushes (SQLite, at least once a second) included
   Each round times bare, then session, then bare again, each with fresh objects, and takes
   session / (mean of the two bare rates): the machine's speed drifts by a few percent over a
   minute, and bracketing cancels that. A round still varies by several percent when the machine is
   busy elsewhere, so there are many short rounds; even so the median moves by about 2% from one
   sitting to the next. The floor is the median over the rounds, >= 0.95. The two bare loops of a
   round also gauge the machine: when the second differs from the first by more than 5% in the
   middle half of the rounds, the sitting gives no verdict on a 5% floor, and says so.
   A bare loop that also evaluates as often as a session does by default is timed for reference.
2. A snapshot's cost at 10^4, 10^5 and 10^6 steps of history (10^5 with --quick), on the same run
   with a learning-rate decay of 0.1 (so that it does not overfit into its guardrail): the history is
   bounded, so it must not grow with the run's length. The run's resident memory is printed too.
3. Part 1 on a large data set (moons, 100,000 examples, 7 rounds): a pass over it for the train and
   dev cost costs some 170 updates, so a session evaluates less often there than every 500 steps
   (evaluation_interval), and the ratio must hold as well. Bare loops evaluating that often and
   every 500 steps are timed for reference.
"""

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from babysit.config import parse_config  # noqa: E402
from babysit.session import Session, SessionSettings  # noqa: E402
from babysit.store import Store  # noqa: E402
from babysit.trainer import Trainer  # noqa: E402

CONFIG = '{"data": {"name": "moons", "n_samples": 1000}, "model": {"layers": [16, 16]}}'
LARGE_CONFIG = '{"data": {"name": "moons", "n_samples": 100000}, "model": {"layers": [16, 16]}}'
# for the long history: a decay keeps the run from overfitting into its guardrail (near step 335,000
# at a constant alpha), which would pause it
LONG_CONFIG = ('{"data": {"name": "moons", "n_samples": 1000}, "model": {"layers": [16, 16]}, '
               '"hyperparameters": {"learning_rate_decay": 0.1}}')


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


def in_session(config, seconds, home, interval=None):
    store = Store(home)
    session = Session.create(store, config, settings=SessionSettings())
    if interval is not None:
        interval.append(session.evaluation_interval())
    session.start_thread()
    session.submit("start")
    while session.trainer.step_count == 0:
        time.sleep(0.01)
    first, start = session.trainer.step_count, time.perf_counter()
    time.sleep(seconds)
    rate = (session.trainer.step_count - first) / (time.perf_counter() - start)
    session.close()
    store.close()  # one connection per round otherwise, each with its own page cache, for the whole bench
    return rate


def snapshot_cost(config, home, sizes):
    """Train one session synchronously and time snapshot() as its history reaches each size."""
    store = Store(home)
    session = Session.create(store, config, settings=SessionSettings())
    session.submit("start")
    rows = []
    for size in sizes:
        while session.trainer.step_count < size:
            if session.tick() is None and session.status != "running":  # never wait on a paused run
                raise SystemExit(f"the run stopped training at step {session.trainer.step_count:,}: "
                                 f"{session.status}, {session.snapshot().events[-1].message}")
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
    store.close()
    return rows


def middle_half(values):
    low, _, high = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return low, high


def session_vs_bare(config, seconds, rounds, home):
    """Rounds of bare / session / bare, each printed, then their median; returns the session's evaluation interval."""
    ratios, drifts, interval = [], [], []
    for r in range(rounds):
        before = bare(config, seconds)
        session = in_session(config, seconds, home, interval)
        after = bare(config, seconds)
        ratios.append(session / ((before + after) / 2))
        drifts.append(after / before)
        print(f"  round {r + 1}: bare {before:>8,.0f}  session {session:>8,.0f}  bare {after:>8,.0f} steps/s"
              f"  ->  {ratios[-1]:.3f}", flush=True)
    ratio = statistics.median(ratios)
    low, high = middle_half(ratios)
    verdict = "PASS" if ratio >= 0.95 else "FAIL"
    print(f"  session / bare      = {ratio:.3f} median of {rounds} (middle half {low:.3f}–{high:.3f}, "
          f"min {min(ratios):.3f}, max {max(ratios):.3f})")
    # The same loop timed twice, a few seconds apart, gauges the machine: when it differs from itself by
    # more than the 5% the floor allows, a median near the floor says nothing about the session.
    low, high = middle_half(drifts)
    print(f"  the machine's own noise: each round's second bare loop / its first, middle half {low:.3f}–{high:.3f}")
    if low < 0.95 or high > 1.05:
        print(f"  floor 0.95: NO VERDICT, the machine is too noisy this sitting to tell 5% apart "
              f"(as measured: {verdict}); run it again when it is quieter")
    else:
        print(f"  floor 0.95: {verdict}")
    return interval[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 rounds (3 on the large set) and a 10^5-step history")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per timed block (default 2)")
    parser.add_argument("--rounds", type=int, default=None, help="bare/session/bare rounds (default 21, 5 quick)")
    args = parser.parse_args()
    seconds = args.seconds or 2.0
    rounds = args.rounds or (5 if args.quick else 21)
    config = parse_config(CONFIG)
    print(f"babysit session vs bare loop: moons 2-16-16-2 relu, Adam, batch 64, float64; {seconds:g} s blocks, "
          f"{rounds} rounds")
    with tempfile.TemporaryDirectory() as home:
        every = session_vs_bare(config, seconds, rounds, home)
        with_eval = bare(config, seconds, every)
        plain = bare(config, seconds)
        print(f"  bare loop evaluating every {every} steps / bare = {with_eval / plain:.3f}")
        print("snapshot cost as the history grows (it must not grow with it):")
        sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
        rows = snapshot_cost(parse_config(LONG_CONFIG), home, sizes)
        growth = rows[-1][1] / rows[0][1]
        print(f"  snapshot at {sizes[-1]:,} / at {sizes[0]:,} steps = {growth:.2f}x")
        # last: its data set would count in the peak RSS printed above
        print(f"session vs bare loop with 100,000 examples ({3 if args.quick else 7} rounds):")
        large = parse_config(LARGE_CONFIG)
        every = session_vs_bare(large, seconds, 3 if args.quick else 7, home)
        with_eval = bare(large, seconds, every)
        every_500 = bare(large, seconds, 500)
        plain = bare(large, seconds)
        print(f"  the session evaluates every {every:,} steps there; a bare loop evaluating that often / bare = "
              f"{with_eval / plain:.3f}, every 500 steps / bare = {every_500 / plain:.3f}")


if __name__ == "__main__":
    main()
