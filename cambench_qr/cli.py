"""`cambench-qr ...`: a thin command line over the rooms. Each subcommand parses, calls one room, reports.

Errors a user can fix (bad config, bad path, bad option, a full disk, a corrupt file) end as one line on
stderr naming the argument or file at fault, with exit status 2 (``errors.run_command``). Size-like options
are bounded by the maxima of ``limits``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import OneLineParser, UsageError, parse_arguments, run_command
from .limits import MAX_IMAGE_SIZE, MAX_ROWS, MAX_SEED, bounded_int


def _add_build(sub) -> None:
    p = sub.add_parser("build", help="build a dataset config into a Hub-layout folder")
    p.add_argument("--config", required=True, help="config name, e.g. standard, paper, blur")
    p.add_argument("--out", required=True, help="dataset folder; configs already in it are kept")
    p.add_argument("--num-train", type=bounded_int(0, MAX_ROWS), default=None,
                   help=f"train rows, at most {MAX_ROWS} (default 1200; 0 for the test-only configs "
                        f"interventions and real)")
    p.add_argument("--num-test", type=bounded_int(0, MAX_ROWS), default=600,
                   help=f"test rows, at most {MAX_ROWS} (default 600)")
    p.add_argument("--seed", type=bounded_int(0, MAX_SEED), default=0, help="base seed (default 0)")
    p.add_argument("--num-proc", type=bounded_int(1, 1 << 16), default=1,
                   help="worker processes (default 1; capped at the CPU count)")
    p.add_argument("--image-size", type=bounded_int(64, MAX_IMAGE_SIZE), default=None,
                   help=f"canvas side, px, 64-{MAX_IMAGE_SIZE} (default: the config's)")
    p.add_argument("--push", metavar="REPO_ID", default=None, help="also upload DIR to this Hub dataset repo")
    p.add_argument("--photos", default=None, help="config real: folder of photos with manifest.csv")
    p.set_defaults(handler=_run_build)


def _run_build(args: argparse.Namespace) -> int:
    from .dataset_builder.build import TEST_ONLY_CONFIGS, build_dataset
    from .dataset_builder.publish import PushError
    from .dataset_builder.real import build_real

    if (args.config == "real") != (args.photos is not None):
        raise UsageError("--photos DIR goes with --config real, and only with it")
    num_train = args.num_train
    if num_train is None:
        num_train = 0 if args.config in TEST_ONLY_CONFIGS else 1200
    try:
        if args.config == "real":
            out, n, skipped = build_real(args.photos, args.out, num_proc=args.num_proc, quiet=args.quiet,
                                         push=args.push)
            print(f"built real ({n} test rows, one per decoded photo; {skipped} photos not decoded, skipped) "
                  f"into {out}")
        else:
            out = build_dataset(args.config, args.out, num_train=num_train, num_test=args.num_test,
                                seed=args.seed, num_proc=args.num_proc, image_size=args.image_size,
                                quiet=args.quiet, push=args.push)
            print(f"built {args.config} ({num_train} train, {args.num_test} test rows) into {out}")
    except PushError as exc:
        raise UsageError(str(exc)) from None
    if args.push:
        print(f"pushed {out} to the Hub dataset repo {args.push}")
    return 0


def _harness_command(name: str, help_text: str, done: str):
    """`cambench-qr <name>` (train / evaluate): options from harness.options, run by harness.<name>."""

    def register(sub) -> None:
        from .harness import options

        p = sub.add_parser(name, help=help_text)
        getattr(options, f"add_{name}_arguments")(p)
        p.set_defaults(handler=run)

    def run(args: argparse.Namespace) -> int:
        from .harness.options import check_arguments

        check_arguments(name, args)
        module = importlib.import_module(f"{__package__}.harness.{name}")
        print(f"{done} {module.run_from_args(args)}")
        return 0

    return register


_add_train = _harness_command("train", "train one regime (zs, ft_struct, ft_leakmin) of a timm backbone",
                              "trained model written to")
_add_evaluate = _harness_command("evaluate", "score a trained model's CAMs on dataset configs",
                                 "evaluation results written to")


def _add_push(sub) -> None:
    p = sub.add_parser("push", help="upload the local Hub root's repos to the Hugging Face Hub")
    p.add_argument("--what", default="all",
                   help="dataset, metric, models, leaderboard, spaces (leaderboard Space) or all (default)")
    p.add_argument("--user", required=True, help="Hub user or organisation whose local repos are pushed")
    p.add_argument("--hub-root", default="hub", help="local Hub root folder (default ./hub)")
    p.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")
    p.set_defaults(handler=_run_push)


def _run_push(args: argparse.Namespace) -> int:
    from .hub_cards import HubRoot, push

    results = push(HubRoot(args.hub_root, args.user), args.what, token=args.token, quiet=args.quiet)
    for result in results:
        print(result.line())
    failed = [r for r in results if not r.ok]
    print(f"pushed {len(results) - len(failed)} of {len(results)} repos; local folders unchanged")
    return 1 if failed else 0


def _add_leaderboard(sub) -> None:
    p = sub.add_parser("leaderboard", help="aggregate evaluation summary.json files into a leaderboard")
    p.add_argument("--results", nargs="+", required=True, metavar="DIR",
                   help="evaluation folders (or folders searched for summary.json)")
    p.add_argument("--out", default=None,
                   help="output folder (default: the leaderboard dataset repo in --hub-root for --user)")
    p.add_argument("--hub-root", default="hub", help="local Hub root folder (default ./hub)")
    p.add_argument("--user", default=None, help="Hub user of the leaderboard repo (default cambench)")
    p.add_argument("--by-revision", action="store_true",
                   help="keep results of different package/data revisions apart (else mixing is an error)")
    p.set_defaults(handler=_run_leaderboard)


def _run_leaderboard(args: argparse.Namespace) -> int:
    from .hub_cards import HubRoot, build_leaderboard
    from .hub_cards.layout import DEFAULT_USER
    from .hub_cards.space import write_leaderboard_space

    hub = HubRoot(args.hub_root, args.user or DEFAULT_USER)
    out = args.out or hub.leaderboard_dir
    written = build_leaderboard(args.results, out, by_revision=args.by_revision)
    for name, path in {**written, **write_leaderboard_space(hub, out)}.items():
        print(f"{name}: {path}")
    return 0


def _add_run(sub) -> None:
    from .harness.presets import PRESETS

    p = sub.add_parser("run", help="the main job: data, training, evaluation, cards, leaderboard, report "
                       "(skips steps already done with the same settings)")
    p.add_argument("--preset", default="quick", help=f"one of {', '.join(PRESETS)} (default quick)")
    p.add_argument("--user", default=None, help="Hub user named in the repos and cards (default cambench)")
    p.add_argument("--hub-root", default="hub", help="local Hub root folder (default ./hub)")
    p.add_argument("--work", default="runs", help="evaluations and step stamps (default ./runs)")
    p.add_argument("--report", default="report", help="report folder (default ./report)")
    p.set_defaults(handler=_run_run)


def _run_run(args: argparse.Namespace) -> int:
    import time

    from .hub_cards.layout import DEFAULT_USER
    from .pipeline import run, summary_lines

    start = time.perf_counter()
    result = run(args.preset, user=args.user or DEFAULT_USER, hub_root=args.hub_root, work_dir=args.work,
                 report_dir=args.report, quiet=args.quiet)
    print("\n".join(summary_lines(result, time.perf_counter() - start)))
    return 0


# Each room's subcommand is one `_add_<name>(sub)` function below that sets `handler`; list it here.
COMMANDS: tuple = (_add_build, _add_train, _add_evaluate, _add_push, _add_leaderboard, _add_run,)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="cambench-qr", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"cambench-qr {__version__}")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_arguments(parser, argv)
    if isinstance(args, int):
        return args
    if args.quiet:  # the rooms honour `quiet`; this silences the bars `datasets` draws itself
        import datasets

        datasets.disable_progress_bars()
    return run_command(f"cambench-qr {args.command}", args, args.handler)


if __name__ == "__main__":
    sys.exit(main())
