"""K trials trained as one stack (StackedTrainer) against the same K Trainers stepped one by one.

    python bench/stacked.py [--quick] [--K 32] [--optimizers adam] [--dtypes float32,float64] [--json FILE]

On machines whose environment sets OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE, run it without them (the
script reports them but never changes them):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/stacked.py

The workload is bench/peers.py's "tiny": relu 2-16-16-2, mini-batch 32, 4096 Gaussian examples (so
every step is a full batch), BLAS on 1 thread. The K trials share the seed, so data, initial
weights and the order of examples, and differ in hyperparameters drawn once from a fixed generator
(alpha, beta, beta1, beta2, epsilon, learning-rate decay and its schedule, lambd: half of the trials
have L2), as a caviar study would draw them.

  one_by_one  K Trainer objects; one round = trainer.step() on each in turn
  stacked     one StackedTrainer of the same K configs; one round = stacked.step()

Both columns are trial-steps/s (K per round). A round of each is timed in blocks of about --budget
seconds (1.0 s, 0.1 s with --quick) after a warm-up that sizes them; the two take turns block by
block and each keeps its best of 3, so a busy spell on a shared machine slows both rather than one.
Before timing, the first rounds of both are checked equal (costs and parameters, bit for bit).
Floors: stacked / one_by_one >= 6 in float32 and >= 5 in float64 with K = 32 and Adam; the exit
status is 0 either way.
"""

import argparse
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so `python bench/stacked.py` from the repo root finds babysit and models
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import threadpoolctl  # noqa: E402

from babysit.config import ModelConfig, RunConfig  # noqa: E402
from babysit.datasets import Dataset  # noqa: E402
from babysit.hyperparams import HyperParams  # noqa: E402
from babysit.stacked_trainer import StackedTrainer  # noqa: E402
from babysit.trainer import Trainer  # noqa: E402

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
M = 4096
SIZES = (2, 16, 16, 2)
BATCH = 32
THREADS = 1
FLOORS = {"float32": 6.0, "float64": 5.0}  # stacked / one_by_one, K = 32, Adam
ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
SLOWING_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
CHECK_ROUNDS = 50


def make_data(seed=0):
    """bench/peers.py's data: Gaussian features labelled by a random linear rule, as a Dataset."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((M, SIZES[0]))
    y = (X @ rng.standard_normal((SIZES[0], SIZES[-1]))).argmax(axis=1)
    return Dataset(
        name="bench",
        X_train=np.ascontiguousarray(X.T),
        y_train=y,
        X_dev=np.empty((SIZES[0], 0)),
        y_dev=np.empty(0, int),
        classes=tuple(range(SIZES[-1])),
        feature_names=tuple(f"x{i}" for i in range(SIZES[0])),
    )


def make_configs(K, optimizer, dtype, seed=1):
    """K configs of one stack, their hyperparameters drawn as a random search would draw them."""
    rng = np.random.default_rng(seed)
    configs = []
    for k in range(K):
        schedule = ("inverse_time", "exponential", "staircase", "none")[k % 4]
        rate = float(rng.uniform(0.9, 0.999)) if schedule in ("exponential", "staircase") else float(rng.uniform(0, 1))
        hp = HyperParams(
            optimizer=optimizer,
            alpha=float(10 ** rng.uniform(-4, -2.5 if optimizer in ("rmsprop", "adam") else -1.5)),
            beta=float(rng.uniform(0.8, 0.99)),
            beta1=float(rng.uniform(0.8, 0.95)),
            beta2=float(rng.uniform(0.99, 0.9999)),
            epsilon=float(10 ** rng.uniform(-8, -6)),
            mini_batch_size=BATCH,
            learning_rate_decay=rate,
            decay_schedule=schedule,
            lambd=float(10 ** rng.uniform(-3, -1)) if k % 2 else 0.0,
        )
        model = ModelConfig(layers=SIZES[1:-1], activation="relu", dtype=dtype)
        configs.append(RunConfig(seed=0, model=model, hyperparameters=hp))
    return configs


def check_equal(configs, data, rounds=CHECK_ROUNDS):
    """The stack's first rounds equal the lone trainers' (costs and parameters); True / False."""
    stack = StackedTrainer(configs, data=data)
    trainers = [Trainer(c, data=data) for c in configs]
    for _ in range(rounds):
        record = stack.step()
        for k, trainer in enumerate(trainers):
            if trainer.step().cost != record.cost[k]:
                return False
    return all(np.array_equal(t.model.params, stack.model.params[k]) for k, t in enumerate(trainers))


def _timed(run, n):
    start = time.perf_counter()
    run(n)
    return time.perf_counter() - start


def warm_up(run, budget):
    """Rounds of ``run`` that fill about ``budget`` seconds (doubling until a block lasts budget/10)."""
    n = 1
    while (elapsed := _timed(run, n)) < budget / 10:
        n *= 2
    return max(1, round(n * budget / elapsed))


def measure(K, optimizer, dtype, budget, repeats=3):
    """{"one_by_one": trial-steps/s, "stacked": trial-steps/s, "equal": bool} for one cell."""
    data = make_data()
    configs = make_configs(K, optimizer, dtype)
    with threadpoolctl.threadpool_limits(limits=THREADS):
        equal = check_equal(configs, data)
        trainers = [Trainer(c, data=data) for c in configs]
        steps = [t.step for t in trainers]
        stack = StackedTrainer(configs, data=data)
        stacked_step = stack.step

        def one_by_one(n):
            for _ in range(n):
                for step in steps:
                    step()

        def stacked(n):
            for _ in range(n):
                stacked_step()

        blocks = {name: (run, warm_up(run, budget)) for name, run in (("one_by_one", one_by_one), ("stacked", stacked))}
        best = dict.fromkeys(blocks, 0.0)
        for _ in range(repeats):
            for name, (run, n) in blocks.items():
                best[name] = max(best[name], n * K / _timed(run, n))
    if not stack.active.all() or any(t.diverged for t in trainers):
        raise SystemExit("a trial diverged during the benchmark: the comparison would be unfair")
    return {**best, "equal": equal}


def version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def header(K):
    lines = [
        f"babysit stacked: K = {K} trials of relu {'-'.join(map(str, SIZES))}, batch {BATCH}, {M} Gaussian examples; "
        "trial-steps/s (best of 3)",
        f"python {platform.python_version()}, numpy {np.__version__}, threadpoolctl {version('threadpoolctl')}; "
        f"{CORES} cores ({platform.processor() or platform.machine()}); threads: BLAS {THREADS}, Python 1",
    ]
    for info in threadpoolctl.threadpool_info():
        if info["user_api"] == "blas":
            path = Path(info["filepath"])
            lines.append(
                f"BLAS in {path.parent.name}: {info['internal_api']} {info.get('version')} "
                f"({info.get('architecture')}, {info.get('threading_layer')}, {info.get('num_threads')} threads "
                f"outside the benchmark) {path.name}"
            )
    env = {k: os.environ[k] for k in ENV_VARS if k in os.environ}
    lines.append(f"env: {', '.join(f'{k}={v}' for k, v in env.items()) or 'no OPENBLAS/OMP/MKL variables set'}")
    if any(k in env for k in SLOWING_VARS):
        lines.append(
            "  WARNING: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE slow numpy; "
            "rerun with env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
        )
    return "\n".join(lines)


def table(results, K):
    cols = ("dtype", "optimizer", "K", "one_by_one", "stacked", "ratio", "floor", "verdict", "equal")
    rows = []
    for (dtype, optimizer), r in results.items():
        ratio = r["stacked"] / r["one_by_one"]
        floor = FLOORS[dtype] if (K == 32 and optimizer == "adam") else None
        verdict = "-" if floor is None else ("PASS" if ratio >= floor else "FAIL")
        rows.append(
            (
                dtype,
                optimizer,
                str(K),
                f"{r['one_by_one']:,.0f}",
                f"{r['stacked']:,.0f}",
                f"{ratio:.2f}x",
                "-" if floor is None else f">= {floor:g}x",
                verdict,
                "bit for bit" if r["equal"] else "NO",
            )
        )
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]

    def line(cells):
        pairs = enumerate(zip(cells, widths, strict=True))  # numbers right-aligned
        return "  ".join(c.rjust(w) if 3 <= i <= 6 else c.ljust(w) for i, (c, w) in pairs)

    return "\n".join([line(cols), line(["-" * w for w in widths]), *map(line, rows)])


def parse_list(text, allowed, what):
    items = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in items if s not in allowed]
    if unknown or not items:
        given = ", ".join(unknown) or "(none)"
        raise argparse.ArgumentTypeError(f"unknown {what} {given}; choose from {', '.join(allowed)}")
    return items


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short blocks: a few seconds in all, noisier")
    parser.add_argument("--K", type=int, default=32, help="trials in the stack (default 32; the floors need 32)")
    optimizers = ("gd", "momentum", "rmsprop", "adam")
    parser.add_argument("--optimizers", default="adam", type=lambda s: parse_list(s, optimizers, "optimizer"))
    dtypes = ("float32", "float64")
    parser.add_argument("--dtypes", default="float32,float64", type=lambda s: parse_list(s, dtypes, "dtype"))
    parser.add_argument("--budget", type=float, default=None, help="seconds per timed block (default 1.0, --quick 0.1)")
    parser.add_argument("--json", metavar="FILE", help="write trial-steps/s as JSON")
    args = parser.parse_args(argv)
    budget = args.budget or (0.1 if args.quick else 1.0)

    results = {}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    for dtype in args.dtypes:
        for optimizer in args.optimizers:
            print(f"  {dtype} {optimizer} ...", end="", file=sys.stderr, flush=True)
            results[dtype, optimizer] = measure(args.K, optimizer, dtype, budget)
            print(f" done ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    load_after = os.getloadavg()[0]

    print(header(args.K))
    print()
    print(table(results, args.K))
    print(
        f"\n({time.perf_counter() - started:.0f} s of measuring, {budget} s blocks; 1-min load average "
        f"{load_before:.2f} before, {load_after:.2f} after, on {CORES} cores)"
    )
    if args.json:
        out = {
            f"{d}/{o}": {k: (round(v, 1) if not isinstance(v, bool) else v) for k, v in r.items()}
            for (d, o), r in results.items()
        }
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
