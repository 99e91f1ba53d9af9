"""The headless face of babysit.

    babysit train --config FILE --out DIR [--steps N | --epochs E]   train a new run, write its bundle
    babysit runs [--json]                                            every run in the store
    babysit resume RUN [--steps N | --epochs E]                      continue a stored run
    babysit export RUN --out DIR                                     a run's bundle
    babysit replay CONFIG --out DIR [--steps N]                      retrain a config with its schedule
    babysit retest CONFIG|RUN [--seeds 5]                            are these hyperparameters stale?
    babysit probe RUN                                                LR range probe from a run's weights
    babysit sample SPACE --n N [--seed S] --out FILE.csv             points of a search space, no training
    babysit sweep SPACE --trials N [--halving] [--out DIR]           a caviar study headless
    babysit sweep --resume STUDY [--out DIR]                         finish an interrupted study

Errors that are the user's to fix (a bad config, a bad CSV, an unknown run) print one line per
problem and exit 2, with no traceback; a run stopped by its guardrail exits 1.
"""

import argparse
import json
import os
import sys

from babysit.blas import one_blas_thread
from babysit.errors import BabysitError, ConfigError, DivergedError


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _length(parser, epochs_help):
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--steps", type=_positive_int, help="number of updates")
    group.add_argument("--epochs", type=_positive_int, help=epochs_help)


def build_parser():
    parser = argparse.ArgumentParser(prog="babysit", description="Tune a neural network's hyperparameters.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("train", help="train a new run headless from a config file")
    p.add_argument("--config", required=True, help="a run config (JSON)")
    p.add_argument("--out", required=True, help="folder for the run's bundle (config.json, metrics.csv, …)")
    _length(p, "passes over the training set (default 20)")
    p.add_argument("--eval-every", type=_positive_int, default=50, metavar="K",
                   help="evaluate train and dev cost every K steps and at the end (default 50)")
    p.add_argument("--name", help="a name for the run in the store")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("runs", help="list the runs in the store ($BABYSIT_HOME, default ./runs)")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(run=cmd_runs)

    p = commands.add_parser("resume", help="continue a stored run headless from its newest checkpoint")
    p.add_argument("run_id", metavar="RUN")
    _length(p, "until this many passes over the training set in all")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_resume)

    p = commands.add_parser("export", help="write a run's bundle into a folder")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--out", required=True)
    p.set_defaults(run=cmd_export)

    p = commands.add_parser("replay", help="retrain a config with its schedule; compare with its metrics.csv")
    p.add_argument("config", metavar="CONFIG")
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=_positive_int,
                   help="number of updates (default: as many as the metrics.csv beside CONFIG has)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_replay)

    p = commands.add_parser("retest", help="retrain on fresh seeds and splits: have the hyperparameters gone stale?")
    p.add_argument("config", metavar="CONFIG|RUN", help="a config file (a bundle's config.json) or a run id")
    p.add_argument("--seeds", type=_positive_int, default=5, help="fresh seeds to train on (default 5)")
    _length(p, "passes over the training set (default: as long as the recorded run)")
    p.add_argument("--json", action="store_true", help="the result as JSON")
    p.set_defaults(run=cmd_retest)

    p = commands.add_parser("probe", help="LR range probe from a run's newest checkpoint (the run is untouched)")
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--json", action="store_true", help="the curve as JSON")
    p.set_defaults(run=cmd_probe)

    p = commands.add_parser("sample", help="sample points from a search space into a CSV (no training)")
    p.add_argument("space", metavar="SPACE", help="a search space (JSON)")
    p.add_argument("--n", type=_positive_int, required=True, help="number of points")
    p.add_argument("--seed", type=int, default=0, help="point i depends only on (seed, i) (default 0)")
    p.add_argument("--out", required=True, help="the CSV file: a trial column, then one column per name")
    p.set_defaults(run=cmd_sample)

    p = commands.add_parser("sweep", help="a caviar study: sample a space and train every point, in parallel")
    p.add_argument("space", metavar="SPACE", nargs="?", help="a search-space file (JSON)")
    p.add_argument("--trials", type=_positive_int, default=20, help="points to sample and train (default 20)")
    p.add_argument("--epochs", type=_positive_int, default=20, help="each trial's epochs without halving (default 20)")
    p.add_argument("--halving", action="store_true", help="successive halving over rungs of 1, 3, 9, 27 epochs")
    p.add_argument("--seed", type=int, default=0, help="the study's sampling seed (default 0)")
    p.add_argument("--scheduler", help="a Dask scheduler address (tcp://host:8786); default: this machine's cores "
                                       "($BABYSIT_DASK_SCHEDULER also sets it)")
    p.add_argument("--out", help="folder for leaderboard.csv and best.json")
    p.add_argument("--name", help="a name for the study")
    p.add_argument("--resume", metavar="STUDY", help="finish an interrupted study instead of starting one")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=cmd_sweep)
    return parser


def _store():
    from babysit.store import Store

    return Store()


def _summary(session):
    snap = session.snapshot()
    text = f"run {snap.run_id}: {snap.status} at step {snap.step:,} (epoch {snap.epoch})"
    ev = snap.last_evaluation
    if ev.get("train_cost") is not None:
        text += f"\n  train cost {ev['train_cost']:.4f}, accuracy {ev['train_accuracy']:.3f}"
        if ev.get("dev_cost") is not None:
            text += f"; dev cost {ev['dev_cost']:.4f}, accuracy {ev['dev_accuracy']:.3f}"
    return text


def _guardrail(reason, where):
    raise DivergedError(f"stopped by the guardrail: {reason}. Metrics up to then are in {where}; "
                        "lower alpha or add decay and train again")


def cmd_train(args):
    from babysit.config import load_config
    from babysit.export import write_text
    from babysit.runner import run_headless

    config = load_config(args.config)
    result = run_headless(config, args.out, steps=args.steps, epochs=args.epochs or (None if args.steps else 20),
                          eval_every=args.eval_every, progress=not args.quiet, name=args.name)
    write_text(os.path.join(args.out, "config.json"), config.to_json())  # the config as given, resolved
    if result.stopped_by:
        _guardrail(result.stopped_by, os.path.join(args.out, "metrics.csv"))
    print(_summary(result.session) + f"\n  bundle in {args.out}")
    return 0


def cmd_runs(args):
    runs = _store().list_runs()
    if args.json:
        print(json.dumps([{"id": r.id, "name": r.name, "status": r.status, "step": r.step, "epoch": r.epoch,
                           "data": r.data_label, "parent": r.parent, "best_dev_cost": r.best_dev_cost,
                           "created": r.created} for r in runs], indent=1))
        return 0
    if not runs:
        print("no runs yet: `babysit train --config FILE --out DIR` makes one")
        return 0
    print(f"{'id':12}  {'status':8}  {'step':>9}  {'best dev':>8}  name")
    for r in runs:
        best = "" if r.best_dev_cost is None else f"{r.best_dev_cost:.4f}"
        print(f"{r.id:12}  {r.status:8}  {r.step:>9,}  {best:>8}  {r.name}")
    return 0


def cmd_resume(args):
    from babysit.runner import drive
    from babysit.session import Session

    session = Session.open(_store(), args.run_id)
    reason = drive(session, args.steps, args.epochs, progress=not args.quiet)
    if reason:
        _guardrail(reason, f"run {args.run_id}")
    print(_summary(session))
    return 0


def cmd_export(args):
    from babysit.export import export_run

    export_run(_store(), args.run_id, args.out)
    print(f"run {args.run_id} exported to {args.out}")
    return 0


def cmd_replay(args):
    from babysit.config import load_config
    from babysit.export import read_metrics_csv
    from babysit.runner import run_headless

    config = load_config(args.config)
    recorded_path = os.path.join(os.path.dirname(os.path.abspath(args.config)), "metrics.csv")
    recorded = read_metrics_csv(recorded_path) if os.path.exists(recorded_path) else None
    steps = args.steps or (int(recorded["step"][-1]) if recorded is not None and len(recorded["step"]) else None)
    if steps is None:
        raise ConfigError("replay needs --steps: there is no metrics.csv beside the config to take the length from")
    result = run_headless(config, args.out, steps=steps, progress=not args.quiet,
                          name=f"replay of {args.config}")
    print(_summary(result.session))
    if recorded is None:
        return 0
    replayed = read_metrics_csv(os.path.join(args.out, "metrics.csv"))
    n = min(len(recorded["cost"]), len(replayed["cost"]))
    a, b = recorded["cost"][:n].tobytes(), replayed["cost"][:n].tobytes()
    if a == b and n == len(recorded["cost"]):
        print(f"the cost column matches {recorded_path} bit for bit ({n:,} steps)")
        return 0
    differ = [i for i in range(n) if recorded["cost"][i].tobytes() != replayed["cost"][i].tobytes()]
    where = f"first at step {differ[0] + 1}" if differ else f"lengths {len(recorded['cost'])} and {n}"
    print(f"babysit: the replayed cost column differs from {recorded_path}: {where}", file=sys.stderr)
    return 1


def cmd_retest(args):
    from babysit.config import load_config
    from babysit.export import read_metrics_csv
    from babysit.retest import retest
    from babysit.store import RUN_ID
    from babysit.trainer import Evaluation

    store, run_id, recorded, steps = None, None, None, args.steps
    if RUN_ID.match(args.config) and not os.path.exists(args.config):
        from babysit.config import RunConfig
        from babysit.session import Session

        store = _store()
        run_id = args.config
        session = Session.open(store, run_id)
        config = RunConfig.from_dict(store.get_run(run_id).config)
        ev = session.snapshot().last_evaluation
        if ev.get("train_cost") is not None:
            recorded = Evaluation(int(ev["step"]), ev["train_cost"], ev["train_accuracy"], ev["dev_cost"],
                                  ev["dev_accuracy"])
        steps = steps or (session.trainer.step_count if args.epochs is None else None)
        config = session.trainer.config.replace(
            hyperparameters=session.trainer.hp, schedule=())  # what is in force now is what gets retested
    else:
        config = load_config(args.config)
        beside = os.path.join(os.path.dirname(os.path.abspath(args.config)), "metrics.csv")
        if os.path.exists(beside):
            columns = read_metrics_csv(beside)
            evaluated = [i for i, v in enumerate(columns["train_cost"]) if v == v]
            if evaluated:
                i = evaluated[-1]
                dev = columns["dev_cost"][i]
                recorded = Evaluation(int(columns["step"][i]), columns["train_cost"][i],
                                      columns["train_accuracy"][i], None if dev != dev else dev,
                                      None if dev != dev else columns["dev_accuracy"][i])
                steps = steps or (int(columns["step"][-1]) if args.epochs is None else None)
    result = retest(config, recorded, seeds=args.seeds, steps=steps, epochs=args.epochs)
    if store is not None:
        store.add_retest(run_id, result.to_dict())
    print(json.dumps(result.to_dict(), indent=1) if args.json else result.verdict)
    return 0


def cmd_probe(args):
    from babysit.probe import lr_probe
    from babysit.session import Session

    session = Session.open(_store(), args.run_id)
    result = lr_probe(session.trainer)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        print(f"suggested alpha {result.suggested_alpha:.3g} ({len(result.alphas)} probe steps"
              f"{'; ' + result.stopped_early if result.stopped_early else ''})")
    return 0


def cmd_sweep(args):
    from babysit import caviar
    from babysit.runner import Progress
    from babysit.space import load_space

    store = _store()
    if args.resume:
        study_id = args.resume
        store.get_study(study_id)
    else:
        if args.space is None:
            raise ConfigError("sweep needs a search-space file (or --resume STUDY)")
        space = load_space(args.space)
        settings = caviar.StudySettings(n_trials=args.trials, epochs=args.epochs, halving=args.halving)
        study_id = caviar.create_study(store, space, settings, seed=args.seed, name=args.name)
    print(f"study {study_id}: {len(store.trials(study_id))} trials", file=sys.stderr)
    bar = Progress(not args.quiet, len(store.trials(study_id)), "trial")

    def show(progress):
        if bar.bar is not None:
            finished = progress.done + progress.failed + progress.pruned
            bar.bar.update(finished - bar.done)
            bar.done = finished
            eta = "" if progress.eta is None else f"{progress.eta:.0f}s"
            bar.bar.set_postfix(running=progress.running, failed=progress.failed, pruned=progress.pruned, eta=eta)

    try:
        trials = caviar.run_study(store, study_id, scheduler=args.scheduler, on_progress=show)
    finally:
        bar.close()
    best = caviar.best_trial(trials)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        caviar.write_leaderboard(os.path.join(args.out, "leaderboard.csv"), trials)
        if best is not None:
            from babysit.config import RunConfig
            from babysit.export import write_text

            write_text(os.path.join(args.out, "best.json"), RunConfig.from_dict(best.config).to_json())
    failed = sum(t.status == "failed" for t in trials)
    if best is None:
        print(f"study {study_id}: no trial finished ({failed} failed)")
        return 1
    print(f"study {study_id}: best trial {best.number}, dev cost {caviar.ranking_cost(best):.4f}; "
          f"{failed} failed" + (f"; leaderboard and best config in {args.out}" if args.out else ""))
    return 0


def cmd_sample(args):
    from babysit.export import write_text
    from babysit.space import load_space, points_csv

    space = load_space(args.space)
    points = space.sample_points(args.n, args.seed)
    write_text(args.out, points_csv(space, points))
    print(f"{len(points)} points → {args.out}")
    return 0


def main(argv=None):
    if "numpy" not in sys.modules:  # train on one BLAS thread, as the page's runs do (babysit.blas)
        one_blas_thread()
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except ConfigError as error:
        for problem in error.problems:
            print(f"babysit: error: {problem}", file=sys.stderr)
        return 2
    except DivergedError as error:
        print(f"babysit: diverged: {error}", file=sys.stderr)
        return 1
    except BabysitError as error:
        print(f"babysit: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # an unwritable --out folder, a full disk
        print(f"babysit: error: {error.filename or ''}: {error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("babysit: interrupted", file=sys.stderr)
        return 130
