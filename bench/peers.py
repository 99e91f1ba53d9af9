"""Training steps/s of babysit's Trainer next to its peers, in one run.

    python bench/peers.py [--quick] [--json FILE] [--workloads tiny,mnist,wide] [--dtypes float32,float64]

On machines whose environment sets OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE (they make OpenBLAS pick
slower kernels or blockings), run it without them; the script reports them but never changes them:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/peers.py

Peers, every one doing the same Adam steps (lr 0.001, betas 0.9/0.999, eps 1e-8, no L2) on the same
layer sizes, batch size, dtype and in-memory data:

  babysit              Trainer.step() in a loop (shuffles each epoch, computes the cost every step)
  torch                nn.Sequential(Linear, ReLU, ...), CrossEntropyLoss, Adam(fused=True), the
                       usual zero_grad / backward / step loop over pre-sliced tensors; CPU only
  sklearn_fit          MLPClassifier(solver="adam").fit for E epochs; steps = E * ceil(n / B). Like
                       babysit it shuffles each epoch and computes the loss of every batch.
  sklearn_partial_fit  MLPClassifier.partial_fit called once per pre-sliced mini-batch (one step each)
  gemm_bound           a "step" made only of the matrix products of backprop (forward W_l @ A_{l-1},
                       dW_l = dZ_l @ A_{l-1}.T for every layer, dA_{l-1} = W_l.T @ dZ_l for l >= 2),
                       into preallocated out= arrays, examples as columns: the ceiling for numpy.

torch and partial_fit cycle through batches sliced once in one shuffled order: they skip the per-epoch
reshuffle that babysit and fit pay for, which favours them slightly. (partial_fit runs with
shuffle=False: shuffling inside one mini-batch would not change the step.) scikit-learn's tol must
be >= 0, so fit gets tol=0 with n_iter_no_change=inf, which alone keeps it from stopping early.
For two classes scikit-learn uses one logistic output unit where babysit and torch use a two-unit
softmax: a little less work for scikit-learn. torch is not a dependency of babysit; when it cannot
be imported its column reads "skipped" and the JSON holds null.

Every rate is the best of 3 timed blocks of about --budget seconds (1.5 s, 0.1 s with --quick), after
a warm-up that also sizes the blocks; within a workload and dtype the peers take turns block by
block, so a busy spell on a shared machine slows all of them rather than one. Floors are checked on
the float32 rows; the exit status is 0 either way.

JSON (--json) holds float32 steps/s under "workloads" and float64 under "float64" (null: not run):
    {"workloads": {"tiny": {"babysit": ..., "torch": ..., "sklearn_fit": ...,
                            "sklearn_partial_fit": ..., "gemm_bound": ...}, ...},
     "float64": {"tiny": {...}, ...}}
"""

import argparse
import gc
import itertools
import json
import math
import os
import platform
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so `python bench/peers.py` from the repo root finds babysit and models
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import threadpoolctl  # noqa: E402

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
M = 4096  # training examples: divisible by every batch size below, so every step is a full batch
LR = 0.001
PEERS = ("babysit", "torch", "sklearn_fit", "sklearn_partial_fit", "gemm_bound")

# name -> (layer sizes n_0 … n_L, batch size, BLAS / torch threads)
WORKLOADS = {
    "tiny": ((2, 16, 16, 2), 32, 1),
    "mnist": ((784, 128, 64, 10), 64, 1),
    "wide": ((784, 512, 512, 10), 256, CORES),
}

# babysit / peer ratios that must hold on the float32 rows: (workload, peer, minimum)
FLOORS = (
    ("tiny", "torch", 6.0),
    ("tiny", "sklearn_fit", 3.0),
    ("mnist", "torch", 1.3),
    ("mnist", "sklearn_fit", 1.5),
    ("wide", "gemm_bound", 0.6),
)

ENV_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
SLOWING_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# -- timing ----------------------------------------------------------------------------------------


def _timed(run, n):
    start = time.perf_counter()
    run(n)
    return time.perf_counter() - start


def warm_up(run, budget):
    """Units of ``run`` that fill about ``budget`` seconds, found by doubling n until a block lasts
    budget/10; this also pays the first calls' allocations and starts the thread pools."""
    n = 1
    while (elapsed := _timed(run, n)) < budget / 10:
        n *= 2
    return max(1, round(n * budget / elapsed))


def settle(budget):
    """Let the last peer's BLAS / OpenMP workers stop spinning (OpenBLAS spins ~0.1 s after a call)
    so they do not steal a core from the next peer's block."""
    time.sleep(min(0.15, budget / 2))


# -- data ------------------------------------------------------------------------------------------


def make_data(sizes, seed=0):
    """Gaussian features (M, n_0), examples as rows, labelled by a random linear rule (argmax X R)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((M, sizes[0]))
    y = (X @ rng.standard_normal((sizes[0], sizes[-1]))).argmax(axis=1)
    return X, y


def batches_of(X, y, batch):
    """Pre-sliced, contiguous mini-batches in one fixed shuffled order."""
    order = np.random.default_rng(1).permutation(len(y))
    X, y = X[order], y[order]
    return [(X[i : i + batch].copy(), y[i : i + batch].copy()) for i in range(0, len(y), batch)]


# -- peers: each returns run(n) and how many steps one unit of n is --------------------------------


def babysit_runner(sizes, batch, dtype, X, y):
    from babysit.config import ModelConfig, RunConfig
    from babysit.datasets import Dataset
    from babysit.hyperparams import HyperParams
    from babysit.trainer import Trainer

    data = Dataset(
        name="bench",
        X_train=np.ascontiguousarray(X.T),  # babysit keeps examples as columns
        y_train=y,
        X_dev=np.empty((sizes[0], 0)),
        y_dev=np.empty(0, int),
        classes=tuple(range(sizes[-1])),
        feature_names=tuple(f"x{i}" for i in range(sizes[0])),
    )
    config = RunConfig(
        seed=0,
        model=ModelConfig(layers=tuple(sizes[1:-1]), activation="relu", dtype=dtype),
        hyperparameters=HyperParams(optimizer="adam", alpha=LR, mini_batch_size=batch),
    )
    trainer = Trainer(config, data=data)
    assert trainer.model.dtype == np.dtype(dtype)
    step = trainer.step

    def run(n):
        for _ in range(n):
            step()

    return run, 1


def _sklearn_mlp(sizes, batch, shuffle):
    from sklearn.neural_network import MLPClassifier

    # tol must be >= 0 in scikit-learn; n_iter_no_change=inf alone stops it from ever stopping early
    return MLPClassifier(
        hidden_layer_sizes=tuple(sizes[1:-1]),
        activation="relu",
        solver="adam",
        alpha=0.0,
        batch_size=batch,
        learning_rate_init=LR,
        tol=0.0,
        n_iter_no_change=np.inf,
        early_stopping=False,
        shuffle=shuffle,
        random_state=0,
    )


def sklearn_fit_runner(sizes, batch, dtype, X, y):
    from sklearn.exceptions import ConvergenceWarning

    clf = _sklearn_mlp(sizes, batch, shuffle=True)
    X = X.astype(dtype)  # scikit-learn's MLP keeps float32 input in float32

    def run(epochs):
        clf.set_params(max_iter=epochs)
        with warnings.catch_warnings():  # "maximum iterations reached" is the point here
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(X, y)
        assert clf.n_iter_ == epochs and clf.coefs_[0].dtype == np.dtype(dtype)

    return run, math.ceil(len(y) / batch)


def sklearn_partial_fit_runner(sizes, batch, dtype, X, y):
    # shuffle=False: shuffling inside a single mini-batch would not change the step, only add work
    clf = _sklearn_mlp(sizes, batch, shuffle=False)
    batches = batches_of(X.astype(dtype), y, batch)
    clf.partial_fit(*batches[0], classes=np.arange(sizes[-1]))  # the first call must name the classes
    assert clf.coefs_[0].dtype == np.dtype(dtype)
    cycle = itertools.cycle(batches)
    partial_fit = clf.partial_fit

    def run(n):
        for _ in range(n):
            partial_fit(*next(cycle))

    return run, 1


def gemm_runner(sizes, batch, dtype, X, y):
    rng = np.random.default_rng(2)
    L = len(sizes) - 1

    def rand(*shape):
        return rng.standard_normal(shape).astype(dtype)

    A = [rand(n, batch) for n in sizes]  # A[0] is the input batch; A[l] receives layer l's output
    W = [None] + [rand(sizes[l], sizes[l - 1]) for l in range(1, L + 1)]
    dZ = [None] + [rand(sizes[l], batch) for l in range(1, L + 1)]
    dW = [None] + [np.empty_like(W[l]) for l in range(1, L + 1)]
    dA = [None] + [np.empty_like(A[l - 1]) for l in range(1, L + 1)]
    matmul = np.matmul

    def run(n):
        for _ in range(n):
            for l in range(1, L + 1):
                matmul(W[l], A[l - 1], out=A[l])
            for l in range(L, 0, -1):
                matmul(dZ[l], A[l - 1].T, out=dW[l])
                if l >= 2:
                    matmul(W[l].T, dZ[l], out=dA[l])

    return run, 1


TORCH_NOTE = []  # how the optimizer ran, filled by the first torch runner


def torch_runner(sizes, batch, dtype, X, y):
    import torch
    from torch import nn

    tdtype = getattr(torch, dtype)
    torch.manual_seed(0)
    layers = []
    for l in range(1, len(sizes)):
        layers.append(nn.Linear(sizes[l - 1], sizes[l], dtype=tdtype))
        if l < len(sizes) - 1:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    loss_fn = nn.CrossEntropyLoss()
    batches = [(torch.from_numpy(xb), torch.from_numpy(yb).long()) for xb, yb in batches_of(X.astype(dtype), y, batch)]
    try:  # the fused CPU kernel; older versions lack it, so fall back to foreach and say so
        optimizer = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
        _torch_step(model, loss_fn, optimizer, *batches[0])
        note = "Adam(fused=True)"
    except (RuntimeError, ValueError, TypeError) as error:
        optimizer = torch.optim.Adam(model.parameters(), lr=LR, foreach=True)
        note = f"Adam(foreach=True): fused unsupported ({str(error).splitlines()[0]})"
    if note not in TORCH_NOTE:
        TORCH_NOTE.append(note)
    cycle = itertools.cycle(batches)

    def run(n):
        for _ in range(n):
            _torch_step(model, loss_fn, optimizer, *next(cycle))

    return run, 1


def _torch_step(model, loss_fn, optimizer, xb, yb):
    optimizer.zero_grad(set_to_none=True)
    loss_fn(model(xb), yb).backward()
    optimizer.step()


RUNNERS = {
    "babysit": babysit_runner,
    "sklearn_fit": sklearn_fit_runner,
    "sklearn_partial_fit": sklearn_partial_fit_runner,
    "gemm_bound": gemm_runner,
    "torch": torch_runner,
}


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def measure_cell(workload, dtype, peers, budget, repeats=3):
    """{peer: best steps/s} for one workload and dtype.

    The peers take turns, one timed block each per round, and each keeps its best of ``repeats``
    rounds: a slow spell (another process on a shared machine) then hits every peer alike instead
    of one peer's whole measurement, which keeps the ratios honest. The garbage collector stays
    on: it is part of real training for every peer alike.
    """
    sizes, batch, threads = WORKLOADS[workload]
    X, y = make_data(sizes)
    # threadpool_limits covers numpy's OpenBLAS (and torch's OpenMP); torch has its own knob too
    with threadpoolctl.threadpool_limits(limits=threads):
        if "torch" in peers:
            import torch

            torch.set_num_threads(threads)
        blocks = {}  # peer -> (run, units per block, steps per unit)
        for peer in peers:
            run, steps_per_unit = RUNNERS[peer](sizes, batch, dtype, X, y)
            blocks[peer] = (run, warm_up(run, budget), steps_per_unit)
            settle(budget)
        best = dict.fromkeys(peers, 0.0)
        for _ in range(repeats):
            for peer, (run, n, steps_per_unit) in blocks.items():
                best[peer] = max(best[peer], n * steps_per_unit / _timed(run, n))
                settle(budget)
    del blocks
    gc.collect()  # drop this cell's models and buffers before the next cell
    return best


# -- report ----------------------------------------------------------------------------------------


def version(dist):
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def header(workloads, have_torch):
    lines = [
        f"babysit peers: Adam lr {LR}, relu, {M} Gaussian examples, steps/s (best of 3)",
        f"python {platform.python_version()}, numpy {np.__version__}, scikit-learn {version('scikit-learn')}, "
        f"torch {version('torch') if have_torch else 'not installed'}; "
        f"{CORES} cores ({platform.processor() or platform.machine()})",
    ]
    for name in workloads:
        sizes, batch, threads = WORKLOADS[name]
        lines.append(
            f"  {name:<6} {'-'.join(map(str, sizes)):<16} batch {batch:<4} threads: BLAS {threads}, torch {threads}"
        )
    # every BLAS loaded so far: numpy's own, and scipy's (pulled in by scikit-learn, unused by its MLP)
    for info in threadpoolctl.threadpool_info():
        if info["user_api"] == "blas":
            path = Path(info["filepath"])
            lines.append(
                f"BLAS in {path.parent.name}: {info['internal_api']} {info.get('version')} "
                f"({info.get('architecture')}, {info.get('threading_layer')}) {path.name}"
            )
    if not have_torch:
        lines.append("torch not installed: skipped")
    else:
        import torch

        blas = "MKL" if torch.backends.mkl.is_available() else "no MKL"
        lines.append(f"torch BLAS: {blas}, {torch.get_num_interop_threads()} interop threads; {'; '.join(TORCH_NOTE)}")
    env = {k: os.environ[k] for k in ENV_VARS if k in os.environ}
    set_vars = ", ".join(f"{k}={v}" for k, v in env.items())
    lines.append(f"env: {set_vars or 'no OPENBLAS/OMP/MKL variables set'}")
    if any(k in env for k in SLOWING_VARS):
        lines.append(
            "  WARNING: OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE slow numpy; "
            "rerun with env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE"
        )
    return "\n".join(lines)


def fmt_rate(x):
    return "skipped" if x is None else f"{x:,.0f}"


def fmt_ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def table(results):
    cols = (
        "workload",
        "dtype",
        "thr",
        "babysit",
        "torch",
        "sk_fit",
        "sk_partial",
        "gemm_bound",
        "b/torch",
        "b/sk_fit",
        "b/sk_part",
        "b/gemm",
    )
    rows = []
    for (workload, dtype), r in results.items():
        b = r["babysit"]
        rows.append(
            (
                workload,
                dtype,
                str(WORKLOADS[workload][2]),
                *(fmt_rate(r[p]) for p in PEERS),
                *(fmt_ratio(b, r[p]) for p in ("torch", "sklearn_fit", "sklearn_partial_fit", "gemm_bound")),
            )
        )
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]

    def line(cells):  # text columns left-aligned, numbers right-aligned
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in pairs)

    return "\n".join([line(cols), line(["-" * w for w in widths]), *map(line, rows)])


def floors(results):
    lines = ["floors (float32, babysit / peer):"]
    for workload, peer, minimum in FLOORS:
        r = results.get((workload, "float32"))
        if r is None or r[peer] is None:
            lines.append(f"  {workload:<6} vs {peer:<12} >= {minimum:<4}  not measured")
            continue
        ratio = r["babysit"] / r[peer]
        verdict = "PASS" if ratio >= minimum else "FAIL"
        lines.append(f"  {workload:<6} vs {peer:<12} >= {minimum:<4}  {ratio:6.3f}  {verdict}")
    return "\n".join(lines)


def to_json(results):
    out = {"workloads": {}}
    for (workload, dtype), r in results.items():
        key = out["workloads"] if dtype == "float32" else out.setdefault("float64", {})
        key[workload] = {p: (None if r[p] is None else round(r[p], 1)) for p in PEERS}
    return out


def parse_list(text, allowed, what):
    items = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in items if s not in allowed]
    if unknown or not items:
        given = ", ".join(unknown) or "(none)"
        raise argparse.ArgumentTypeError(f"unknown {what} {given}; choose from {', '.join(allowed)}")
    return items


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short time budgets: the whole run within a minute")
    parser.add_argument("--json", metavar="FILE", help="write steps/s as JSON")
    parser.add_argument(
        "--workloads", default=",".join(WORKLOADS), type=lambda s: parse_list(s, tuple(WORKLOADS), "workload")
    )
    parser.add_argument(
        "--dtypes", default="float32,float64", type=lambda s: parse_list(s, ("float32", "float64"), "dtype")
    )
    parser.add_argument("--budget", type=float, default=None, help="seconds per timed block (default 1.5, --quick 0.1)")
    args = parser.parse_args(argv)
    budget = args.budget or (0.1 if args.quick else 1.5)

    have_torch = torch_available()
    if not have_torch:
        print("torch not installed: skipped", file=sys.stderr)
    peers = [p for p in PEERS if p != "torch" or have_torch]
    results = {}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    for dtype in args.dtypes:
        for workload in args.workloads:
            print(f"  {workload:<6} {dtype} ...", end="", file=sys.stderr, flush=True)
            results[workload, dtype] = {**dict.fromkeys(PEERS), **measure_cell(workload, dtype, peers, budget)}
            print(f" done ({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
    load_after = os.getloadavg()[0]

    print(header(args.workloads, have_torch))
    print()
    print(table(results))
    print()
    print(floors(results))
    print(
        f"\n({time.perf_counter() - started:.0f} s of measuring, {budget} s blocks; 1-min load average "
        f"{load_before:.2f} before, {load_after:.2f} after, which counts this run's own 1-{CORES} busy threads)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results), indent=2) + "\n")


if __name__ == "__main__":
    main()
