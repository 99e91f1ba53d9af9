"""The headless face of babysit: ``babysit train --config FILE --out DIR [--steps N | --epochs E]``.

Errors that are the user's to fix (a bad config, a bad CSV, a diverged run) print one line per
problem and exit non-zero, with no traceback.
"""

import argparse
import sys

from babysit.errors import BabysitError, ConfigError, DivergedError


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="babysit", description="Tune a neural network's hyperparameters.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="train one model headless from a config file")
    train.add_argument("--config", required=True, help="a run config (JSON)")
    train.add_argument("--out", required=True, help="folder for config.json, metrics.csv and the weights")
    length = train.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive_int, help="number of updates")
    length.add_argument("--epochs", type=_positive_int, help="number of passes over the training set (default 20)")
    train.add_argument("--eval-every", type=_positive_int, default=50, metavar="K",
                       help="evaluate train and dev cost every K steps and at the end (default 50)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(run=cmd_train)
    return parser


def cmd_train(args):
    from babysit.config import load_config
    from babysit.runner import run_headless

    config = load_config(args.config)
    result = run_headless(config, args.out, steps=args.steps, epochs=args.epochs or (None if args.steps else 20),
                          eval_every=args.eval_every, progress=not args.quiet)
    last = result.evaluations[-1] if result.evaluations else None
    if result.diverged:
        raise DivergedError(
            f"training stopped: {result.diverged}. Metrics up to then are in {args.out}/metrics.csv; "
            "lower alpha or add decay and train again"
        )
    summary = f"trained {result.trainer.step_count} steps ({result.trainer.epoch} epochs) -> {args.out}"
    if last is not None:
        summary += f"\n  train cost {last.train_cost:.4f}, accuracy {last.train_accuracy:.3f}"
        if last.dev_cost is not None:
            summary += f"; dev cost {last.dev_cost:.4f}, accuracy {last.dev_accuracy:.3f}"
    print(summary)
    return 0


def main(argv=None):
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
