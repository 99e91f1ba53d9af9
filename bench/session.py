"""A live session's cost: its training steps/s against the bare Trainer.step() loop, and what a
snapshot costs as the run's history grows.

    python bench/session.py [--quick] [--seconds S]
    python bench/session.py --instructions

Everything trains on one BLAS thread (unless OPENBLAS_NUM_THREADS and the like say otherwise), as a
session does on the page and the command line (babysit.blas).

1. The floor, session / bare >= 0.95. The same run (moons, 2-16-16-2 relu, Adam, batch 64, float64)
   trained in slices of 500 steps on one thread, for S seconds (60 by default), three ways:
     bare A, B   Trainer.step() in a loop, nothing else (two of them)
     session     Session.turn(), what a session's thread runs: evaluations, health, guardrail,
                 checkpoints and the store's flushes (SQLite, at least once a second) included
   The slices go A S B S A S B S ..., and the ratio is of the steps/s over all of them. This
   machine's speed drifts by 10-40% over seconds when its host is busy; slices a few hundredths of a
   second long, each session slice between two bare ones, cancel what timing each for seconds cannot.
   No loop runs two slices in a row, so none finds its data still in the caches where another does not.
   The session's clock runs only during its own slices, so it flushes as often per step as when it
   trains alone. B / A gauges the noise left (ideally 1); with the spread of the ratio over ten parts
   of the run it makes a margin, and the verdict is PASS or FAIL only when the ratio is further from
   0.95 than that margin, NO VERDICT otherwise.
2. For reference, the session in its own thread: rounds of bare, session, bare of 2 s each, with
   fresh objects, the session started with a command, as a user's run trains. Each round is
   session / (mean of the two bare rates); the median is printed with the machine's drift over a
   round (the second bare loop / the first). A bare loop evaluating as often as a session does by
   default is timed too.
3. A snapshot's cost at 10^4, 10^5, 10^6 and 2 x 10^6 steps of history (10^5 with --quick), on the
   same run with a learning-rate decay of 0.1 (so that it does not overfit into its guardrail), each
   the median of 100 snapshots taken ~500 steps apart, as the page takes them. The history is bounded
   and its drawn points are kept from one snapshot to the next, so the cost must not grow with the
   run, not even while the sparse series (evaluations, health) fill their buckets, which the health
   series have done by 2 x 10^6 steps. The run's resident memory is printed too.
4. Part 1 on a large data set (moons, 100,000 examples, half the time): a pass over it for the train
   and dev cost costs some 170 updates, so a session evaluates less often there than every 500 steps
   (evaluation_interval), and the ratio must hold as well. Bare loops evaluating that often and every
   500 steps are timed for reference.
With --instructions, instead: the same ratio counted in instructions by valgrind's cachegrind, on both
data sets, which no load on the machine moves. It leaves out what instructions do not show (caches,
memory, the host), so it bounds the session's own work rather than replacing part 1. About 10 minutes.
"""

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from babysit.blas import one_blas_thread  # noqa: E402

one_blas_thread()  # before numpy loads: a session trains on one BLAS thread on the page and the command line

import babysit.session  # noqa: E402
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


def in_session(config, seconds, home):
    store = Store(home)
    session = Session.create(store, config, settings=SessionSettings())
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
    """Train one session synchronously and time snapshot() as its history reaches each size: the
    median of 100, each after one more turn() of training, whose rows the snapshot folds in."""
    store = Store(home)
    session = Session.create(store, config, settings=SessionSettings())
    session.submit("start")
    rows = []
    for size in sizes:
        while session.trainer.step_count < size:  # turn() may pass size by up to an evaluation interval
            if session.turn() is None and session.status != "running":  # never wait on a paused run
                raise SystemExit(f"the run stopped training at step {session.trainer.step_count:,}: "
                                 f"{session.status}, {session.snapshot().events[-1].message}")
        session.snapshot()  # folds what is pending
        times = []
        for _ in range(100):  # the median call: a busy machine stretches a few of them several times over
            session.turn()  # as on the page, the history has grown since the last snapshot (by ~500 steps)
            start = time.perf_counter()
            snap = session.snapshot()
            times.append(time.perf_counter() - start)
        cost = statistics.median(times)
        points = sum(len(x) for x, _ in snap.series.values())
        cap = len(snap.series) * (2 * session.settings.history_capacity + 3)  # MinMaxSeries.points()'s bound
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append((size, cost, points, rss))
        print(f"  history {size:>9,} steps: snapshot {cost * 1e3:6.2f} ms, {points:,} points in all series "
              f"(at most {cap:,}), peak RSS {rss:,.0f} MB", flush=True)
    session.close()
    store.close()
    return rows


def middle_half(values):
    low, _, high = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return low, high


SLICE = 500  # steps per slice: a few hundredths of a second, and a multiple of the session's evaluation interval
RESTART = 200_000  # steps after which the alternating runs start again: at a constant alpha the small run
# overfits into its guardrail near step 335,000, which would pause the session


class SessionClock:
    """``time.monotonic`` for babysit.session that stands still between the session's slices, so that
    it flushes as often per step as when it trains alone."""

    def __init__(self):
        self.stopped_for, self.stopped_at = 0.0, time.monotonic()

    def monotonic(self):
        return time.monotonic() - self.stopped_for

    def stop(self):
        self.stopped_at = time.monotonic()

    def go(self):
        self.stopped_for += time.monotonic() - self.stopped_at


def bare_slice(trainer):
    step, start = trainer.step, time.perf_counter()
    for _ in range(SLICE):
        step()
    return SLICE, time.perf_counter() - start


def session_slice(session, clock):
    trainer = session.trainer
    clock.go()
    first, start = trainer.step_count, time.perf_counter()
    while trainer.step_count - first < SLICE:
        if session.turn() is None:
            raise SystemExit(f"the session stopped training at step {trainer.step_count:,}: {session.status}, "
                             f"{session.snapshot().events[-1].message}")
    elapsed = time.perf_counter() - start
    clock.stop()
    return trainer.step_count - first, elapsed


def rate(slices):
    return sum(n for n, _ in slices) / sum(t for _, t in slices)


def alternating(config, seconds, home):
    """Slices of two bare loops A and B and a session S, in the order A S B S A S B S ... for
    ``seconds``: each session slice sits between one of A and one of B, and no loop runs two slices in
    a row (it would find its data still in the caches, an edge on a data set too large for the three to
    share them). Returns S / (A and B), B / A, S / (A and B) in each of ten consecutive parts, the
    session slices run, and the session's evaluation interval. All three start again from step 0
    every RESTART steps."""
    clock = SessionClock()
    babysit.session.time = types.SimpleNamespace(monotonic=clock.monotonic, time=time.time)
    store = Store(home)
    session = None
    try:
        rounds = []  # (bare loop: "A" or "B", its slice, the session's slice after it)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end or len(rounds) < 40:
            if session is None or session.trainer.step_count >= RESTART:
                if session is not None:
                    session.close()
                session = Session.create(store, config, settings=SessionSettings())
                session.submit("start")
                loops = {"A": Trainer(config), "B": Trainer(config)}
                for name in "ABAB":  # warm up, untimed: the first slices pay for caches and the start
                    bare_slice(loops[name])
                    session_slice(session, clock)
            name = "AB"[len(rounds) % 2]
            rounds.append((name, bare_slice(loops[name]), session_slice(session, clock)))
        interval = session.evaluation_interval()
    finally:
        babysit.session.time = time
        if session is not None:
            session.close()
        store.close()

    def ratio(part):
        return rate([r[2] for r in part]) / rate([r[1] for r in part])

    parts = [rounds[i * len(rounds) // 10:(i + 1) * len(rounds) // 10] for i in range(10)]
    null = rate([r[1] for r in rounds if r[0] == "B"]) / rate([r[1] for r in rounds if r[0] == "A"])
    return ratio(rounds), null, [ratio(part) for part in parts], len(rounds), interval


def floor(config, seconds, home):
    """Part 1 (or 4): the alternating slices, their figures and the verdict; returns the evaluation interval."""
    ratio, null, parts, slices, interval = alternating(config, seconds, home)
    error = statistics.stdev(parts) / len(parts) ** 0.5
    margin = max(abs(null - 1), 2 * error)
    print(f"  session / bare = {ratio:.4f} over {slices} slices of each ({SLICE:,} steps; in ten parts "
          f"{min(parts):.3f}–{max(parts):.3f}, standard error {error:.4f})")
    print(f"  bare / bare    = {null:.4f} (two bare loops timed the same way: the noise left, ideally 1)")
    if ratio - margin >= 0.95:
        verdict = "PASS"
    elif ratio + margin < 0.95:
        verdict = "FAIL"
    else:
        verdict = f"NO VERDICT, {ratio:.4f} is within the noise ({margin:.4f}) of 0.95; run it again when it is quieter"
    print(f"  floor 0.95: {verdict} (margin for noise: {margin:.4f}, the larger of |bare / bare - 1| and two "
          f"standard errors)", flush=True)
    return interval


def threaded(config, seconds, rounds, home):
    """Part 2: rounds of bare / session in its thread / bare, each printed, then their median."""
    ratios, drifts = [], []
    for r in range(rounds):
        before = bare(config, seconds)
        session = in_session(config, seconds, home)
        after = bare(config, seconds)
        ratios.append(session / ((before + after) / 2))
        drifts.append(after / before)
        print(f"  round {r + 1}: bare {before:>8,.0f}  session {session:>8,.0f}  bare {after:>8,.0f} steps/s"
              f"  ->  {ratios[-1]:.3f}", flush=True)
    low, high = middle_half(ratios)
    print(f"  session / bare = {statistics.median(ratios):.3f} median of {rounds} (middle half {low:.3f}–{high:.3f})")
    # the same loop timed twice, a few seconds apart: how much the machine drifts within a round
    low, high = middle_half(drifts)
    print(f"  each round's second bare loop / its first: middle half {low:.3f}–{high:.3f}")


def counted_run(which, mode, steps, rate):
    """--count, run under cachegrind: ``steps`` updates of the small or large run, bare or by
    Session.turn() with a clock at ``rate`` steps/s, so that it flushes as often per step as at that
    speed (under valgrind it trains some 50 times slower). ``steps`` is a multiple of the health
    interval, where turn() stops."""
    config = parse_config({"small": CONFIG, "large": LARGE_CONFIG}[which])
    if mode == "bare":
        trainer = Trainer(config)
        for _ in range(steps):
            trainer.step()
        return
    with tempfile.TemporaryDirectory() as home:
        store = Store(home)
        session = Session.create(store, config, settings=SessionSettings())
        babysit.session.time = types.SimpleNamespace(monotonic=lambda: session.trainer.step_count / rate,
                                                     time=time.time)
        session.submit("start")
        while session.trainer.step_count < steps:
            if session.turn() is None:
                raise SystemExit(f"the session stopped training: {session.status}")
        session.close()
        store.close()


SHORT = 5_000  # steps of the shorter of the two runs counted: start-up and the first evaluations and flushes


def instructions(which, steps, rate):
    """Instructions per update, bare and in a session: four runs under cachegrind (at once: counts do not
    depend on the machine's load), SHORT and SHORT + ``steps`` long, whose difference leaves out the start-up."""
    runs = {}
    for mode in ("bare", "session"):
        for n in (SHORT, SHORT + steps):
            command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
                       sys.executable, os.path.abspath(__file__), "--count", which, mode, str(n), str(rate)]
            runs[mode, n] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    count = {}
    for key, process in runs.items():
        _, err = process.communicate()
        found = re.search(r"I\s+refs:\s+([\d,]+)", err)
        if process.returncode or not found:
            raise SystemExit(f"cachegrind run {key} failed:\n{err[-2000:]}")
        count[key] = int(found.group(1).replace(",", ""))
    return [(count[mode, SHORT + steps] - count[mode, SHORT]) / steps for mode in ("bare", "session")]


def instruction_ratios():
    """--instructions: the floor's ratio counted in instructions, which a busy host does not move."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install -y valgrind)")
    rate = bare(parse_config(CONFIG), 2.0)
    print(f"instructions per update under cachegrind, bare and in a session flushing as at {rate:,.0f} steps/s "
          "(this machine's bare loop, just now); what they leave out: caches, memory, the host", flush=True)
    large_interval = babysit.session.evaluation_interval(100_000, 64)
    # a whole number of every periodic task: 40 evaluations, or two on the large set
    for which, label, steps in (("small", "moons, 1,000 examples  ", 20_000),
                                ("large", "moons, 100,000 examples", 2 * large_interval)):
        bare_ir, session_ir = instructions(which, steps, rate)
        print(f"  {label}: bare {bare_ir:,.0f}, session {session_ir:,.0f} over {steps:,} updates"
              f"  ->  session / bare as speed = {bare_ir / session_ir:.4f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="15 s of slices, 3 threaded rounds, a 10^5-step history")
    parser.add_argument("--seconds", type=float, default=None, help="seconds of alternating slices (default 60)")
    parser.add_argument("--instructions", action="store_true",
                        help="instead: the ratio in instructions counted by cachegrind (~10 min, needs valgrind)")
    parser.add_argument("--count", nargs=4, help=argparse.SUPPRESS)  # one run under cachegrind
    args = parser.parse_args()
    if args.count:
        which, mode, steps, rate = args.count
        return counted_run(which, mode, int(steps), float(rate))
    if args.instructions:
        return instruction_ratios()
    seconds = args.seconds or (15.0 if args.quick else 60.0)
    rounds = 3 if args.quick else 7
    config = parse_config(CONFIG)
    print(f"babysit session vs bare loop: moons 2-16-16-2 relu, Adam, batch 64, float64; {seconds:g} s of "
          f"alternating slices")
    with tempfile.TemporaryDirectory() as home:
        every = floor(config, seconds, home)
        print(f"for reference, the session in its own thread, {rounds} rounds of 2 s blocks:")
        threaded(config, 2.0, rounds, home)
        with_eval = bare(config, 2.0, every)
        plain = bare(config, 2.0)
        print(f"  bare loop evaluating every {every} steps / bare = {with_eval / plain:.3f}")
        print("snapshot cost as the history grows (it must not grow with it):")
        # by 2,000,000 steps even the health series (a point every 1,000 steps) have filled their
        # buckets and merged them: every series draws as many points as it ever will
        sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000, 2_000_000]
        rows = snapshot_cost(parse_config(LONG_CONFIG), home, sizes)
        print(f"  snapshot at {sizes[-1]:,} / at {sizes[0]:,} steps = {rows[-1][1] / rows[0][1]:.2f}x", end="")
        print(f"; at {sizes[-1]:,} / at {sizes[-2]:,} = {rows[-1][1] / rows[-2][1]:.2f}x" if len(sizes) > 3 else "")
        # last: its data set would count in the peak RSS printed above
        print(f"session vs bare loop with 100,000 examples ({seconds / 2:g} s of alternating slices):")
        large = parse_config(LARGE_CONFIG)
        every = floor(large, seconds / 2, home)
        with_eval = bare(large, 2.0, every)
        every_500 = bare(large, 2.0, 500)
        plain = bare(large, 2.0)
        print(f"  the session evaluates every {every:,} steps there; a bare loop evaluating that often / bare = "
              f"{with_eval / plain:.3f}, every 500 steps / bare = {every_500 / plain:.3f}")


if __name__ == "__main__":
    main()
