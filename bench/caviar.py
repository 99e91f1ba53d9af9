"""Caviar on Dask against a plain process pool: the overhead per trial, and the speedup from 2 workers.

    python bench/caviar.py [--quick] [--trials 64] [--epochs 8] [--repeats 3] [--json FILE]

On machines whose environment sets OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE, run it without them (the
script reports them but never changes them):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/caviar.py

The workload: the first --trials (64) points of a moons study (4000 examples: 3200 to train on, in
mini-batches of 16, so 200 steps per pass; Adam; alpha and beta1 sampled, 1 or 2 hidden layers of 16),
each trained for --epochs (8) passes by caviar.train_unit, about 100 ms per trial on one core. With
stack=False each trial is one task, as a study of trials of different shapes would be.

  serial       train_unit on each trial in this process, one after another: the per-trial time
  pool(2)      concurrent.futures.ProcessPoolExecutor(2) (spawn), pool.map(train_unit, units)
  dask(2)      client.map(train_unit, units) on an embedded LocalCluster of 2 single-threaded worker
               processes (caviar.make_client's kind of cluster), results gathered in submission order
  dask(1)      the same on a LocalCluster of 1 worker
  study        caviar.run_study end to end on the 2-worker cluster (bounded submission, every result
               written to a store in a temporary folder), stack=False and stack=True (informative)

Every path returns every trial's outcome (state, curve, figures) to this process. Pools and clusters
are started, and every worker has run a trial, before anything is timed: start-up is reported apart.
The timed paths take turns, --repeats (3; 1 with --quick) rounds, and each keeps its best.

Floors: overhead per trial = (dask(2) - pool(2)) / trials, as a share of the serial per-trial time,
<= 10 %; speedup = dask(1) / dask(2) >= 1.8x on 2 cores. The exit status is 0 either way.
"""

import argparse
import concurrent.futures
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so `python bench/caviar.py` from the repo root finds babysit and models
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from babysit import caviar  # noqa: E402
from babysit.space import parse_space  # noqa: E402

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
SPACE = {
    "alpha": {"log_uniform": [0.001, 0.03]},
    "beta1": {"one_minus_log_uniform": [0.8, 0.95]},
    "L": {"int_uniform": [2, 3]},
    "base": {
        "seed": 1,
        "data": {"name": "moons", "n_samples": 4000, "noise": 0.2},
        "model": {"layers": [16], "activation": "relu"},
        "hyperparameters": {"optimizer": "adam", "mini_batch_size": 16},
    },
}
OVERHEAD_FLOOR = 0.10  # at most, of the per-trial time
SPEEDUP_FLOOR = 1.8  # at least, 2 workers against 1
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
SLOWING_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def make_units(n, epochs):
    """One task per trial: the first n points of SPACE, from scratch to ``epochs`` passes."""
    space = parse_space(json.dumps(SPACE))
    points = space.sample_points(n, 0)
    return [{"numbers": [i], "configs": [space.config_for(p).to_dict()], "states": [None], "epochs": epochs}
            for i, p in enumerate(points)]


def warm_units(n):
    """Short tasks that make each worker import and run train_unit once before timing."""
    return [{**u, "epochs": 1} for u in make_units(n, 1)]


def _timed(run):
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def _timed_cpu(run):
    """(wall seconds, CPU seconds of this process: every thread, the embedded schedulers' included, result)."""
    cpu = time.process_time()
    seconds, result = _timed(run)
    return seconds, time.process_time() - cpu, result


def check_outcomes(outcomes, reference):
    """Every path must return every trial, with the serial run's dev costs (bit for bit)."""
    got = [o["evaluation"]["dev_cost"] for o in outcomes]
    want = [o["evaluation"]["dev_cost"] for o in reference]
    if got != want:
        raise SystemExit("a path returned different outcomes from the serial run: the comparison would be unfair")


def start_pool():
    def run():
        pool = concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"))
        list(pool.map(caviar.train_unit, warm_units(8)))
        return pool

    return _timed(run)


def start_cluster(n_workers):
    from distributed import Client, LocalCluster

    def run():
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        client.gather(client.map(caviar.train_unit, warm_units(4 * n_workers), pure=False))
        return client

    return _timed(run)


def close_cluster(client):
    import logging

    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # a worker may still be heartbeating as the scheduler closes: not news
    try:
        cluster = client.cluster
        client.close()
        cluster.close()
    finally:
        quiet.setLevel(level)


def run_study(client, home, n, epochs, stack):
    """A fresh study of the same trials, run to its end; seconds."""
    from babysit.store import Store

    store = Store(home)
    try:
        settings = caviar.StudySettings(n_trials=n, epochs=epochs, stack=stack)
        study_id = caviar.create_study(store, parse_space(json.dumps(SPACE)), settings, seed=0)
        seconds, cpu, trials = _timed_cpu(lambda: caviar.run_study(store, study_id, client=client))
        if any(t.status != "done" for t in trials):
            raise SystemExit("a trial of the benchmark's study did not finish")
        return seconds, cpu
    finally:
        store.close()


def version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def header(n, epochs, repeats):
    lines = [
        f"babysit caviar: {n} trials (moons 4000, batch 16, {epochs} epochs each, one task per trial); "
        f"best of {repeats}",
        f"python {platform.python_version()}, numpy {np.__version__}, dask {version('dask')}, "
        f"distributed {version('distributed')}; {CORES} cores ({platform.processor() or platform.machine()}); "
        "BLAS 1 thread per worker (train_unit's threadpool_limits)",
    ]
    env = {k: os.environ[k] for k in ENV_VARS if k in os.environ}
    lines.append(f"env: {', '.join(f'{k}={v}' for k, v in env.items()) or 'no OPENBLAS/OMP/MKL variables set'}")
    if any(k in env for k in SLOWING_VARS):
        lines.append("  WARNING: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE slow numpy; "
                     "rerun with env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round instead of three: faster, noisier")
    parser.add_argument("--trials", type=int, default=64, help="trials (tasks) per timed path (default 64)")
    parser.add_argument("--epochs", type=int, default=8, help="passes each trial trains (default 8: ~100 ms)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds of the timed paths (default 3, --quick 1)")
    parser.add_argument("--json", metavar="FILE", help="write the timings as JSON")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    n = args.trials
    units = make_units(n, args.epochs)
    home = tempfile.mkdtemp(prefix="babysit-bench-caviar-")
    load_before = os.getloadavg()[0]
    started = time.perf_counter()

    def note(text):
        print(f"  {text} ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)

    caviar.train_unit(warm_units(1)[0])  # this process's imports, outside the serial timing
    reference = [o for u in units for o in caviar.train_unit(u)]
    startup = {}
    startup["pool(2)"], pool = start_pool()
    startup["dask(2)"], client2 = start_cluster(2)
    startup["dask(1)"], client1 = start_cluster(1)
    note("pools and clusters started")

    def on_dask(client):
        def run():
            return [o for outcome in client.gather(client.map(caviar.train_unit, units, pure=False))
                    for o in outcome]
        return run

    def on_pool():
        return [o for outcome in pool.map(caviar.train_unit, units) for o in outcome]

    def on_one_core():
        return [o for u in units for o in caviar.train_unit(u)]

    paths = {"serial": on_one_core, "pool(2)": on_pool, "dask(2)": on_dask(client2), "dask(1)": on_dask(client1)}
    best = dict.fromkeys([*paths, "study stack=False", "study stack=True"], float("inf"))
    cpu = {}  # this process's CPU seconds in each path's best round

    def keep(name, seconds, cpu_seconds):
        if seconds < best[name]:
            best[name], cpu[name] = seconds, cpu_seconds

    try:
        for _ in range(repeats):
            for name, run in paths.items():
                seconds, cpu_seconds, outcomes = _timed_cpu(run)
                check_outcomes(outcomes, reference)
                keep(name, seconds, cpu_seconds)
            for stack in (False, True):
                keep(f"study stack={stack}", *run_study(client2, home, n, args.epochs, stack))
            note("round")
    finally:
        pool.shutdown()
        close_cluster(client2)
        close_cluster(client1)
    load_after = os.getloadavg()[0]

    serial = best.pop("serial")
    per_trial = serial / n
    overhead = (best["dask(2)"] - best["pool(2)"]) / n
    share = overhead / per_trial
    speedup = best["dask(1)"] / best["dask(2)"]
    print(header(n, args.epochs, repeats))
    print()
    print(f"{'path':18}  {'seconds':>8}  {'ms/trial':>8}  {'CPU s here':>10}")
    print(f"{'serial (1 core)':18}  {serial:8.2f}  {1000 * per_trial:8.1f}  {cpu['serial']:10.2f}")
    for name, seconds in best.items():
        print(f"{name:18}  {seconds:8.2f}  {1000 * seconds / n:8.1f}  {cpu[name]:10.2f}")
    print("(CPU s here: this process's CPU time in that run: the client, and the embedded scheduler's thread,\n"
          " competing with the workers for the 2 cores)")
    print()
    print("start-up (excluded above; process start, imports and a first task per worker): "
          + ", ".join(f"{k} {v:.2f} s" for k, v in startup.items()))
    print(f"for comparison, the process pool's speedup: serial / pool(2) = {serial / best['pool(2)']:.2f}x; "
          "other load on the machine lowers both")
    print(f"stacked study: {best['study stack=False'] / best['study stack=True']:.2f}x faster than unstacked "
          "(informative)")
    print()
    verdict = "PASS" if share <= OVERHEAD_FLOOR else "FAIL"
    print(f"dask overhead per trial vs the process pool: {1000 * overhead:+.2f} ms = {share:+.1%} of "
          f"{1000 * per_trial:.1f} ms per trial (floor <= {OVERHEAD_FLOOR:.0%})  {verdict}")
    verdict = "PASS" if speedup >= SPEEDUP_FLOOR else "FAIL"
    print(f"dask speedup, 2 workers vs 1: {speedup:.2f}x (floor >= {SPEEDUP_FLOOR}x)  {verdict}")
    print(f"\n({time.perf_counter() - started:.0f} s in all; 1-min load average {load_before:.2f} before, "
          f"{load_after:.2f} after, on {CORES} cores)")
    if args.json:
        out = {"trials": n, "epochs": args.epochs, "repeats": repeats, "serial": serial, "best": best, "cpu": cpu,
               "startup": startup, "overhead_per_trial_s": overhead, "overhead_share": share, "speedup": speedup}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
