"""`teduo`: the command line. Parsing happens here, once; stages receive a typed RunConfig.

    teduo run jobs/tiny.yaml                  # every stage, resumable
    teduo collect jobs/tiny.yaml data.episodes_per_layout=50
    teduo bench collect --quick --json out.json

User mistakes (bad config, missing files, data from another config) print one line on
stderr and exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys

from teduo_ray import console
from teduo_ray.console import say
from teduo_ray.errors import TeduoError
from teduo_ray.pipeline import STAGES

BENCHMARKS = ("collect", "label", "learn", "finetune", "evaluate", "eval_cache", "seeds", "noise", "gpu")


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="job YAML file, e.g. jobs/tiny.yaml")
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="dotted overrides of config fields, e.g. rl.gamma=0.9 run_dir=runs/x",
    )
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars: plain start and summary lines (for log files)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="teduo",
        description="TEDUO on Ray: offline language-conditioned agents from unlabeled transitions.",
    )
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show Ray's, RLlib's, DeepSpeed's and transformers' logs on the console "
                             "(by default they go to RUN/logs/<stage>.log)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="run every stage in order (resumes finished work)")
    _add_config_args(run)
    run.add_argument("--until", metavar="STAGE", choices=[s.name for s in STAGES],
                     help="stop after this stage")
    run.add_argument("--dry-run", action="store_true",
                     help="print the plan (resources, shard counts, expected stage sizes) and exit")
    for stage in STAGES:
        _add_config_args(sub.add_parser(stage.name, help=stage.summary, description=stage.summary))
    show = sub.add_parser("config", help="print the resolved config of a job as YAML")
    show.add_argument("config")
    show.add_argument("overrides", nargs="*", metavar="key=value")
    bench = sub.add_parser("bench", help="run a benchmark module (python -m benchmarks.<name>)")
    bench.add_argument("name", choices=BENCHMARKS)
    bench.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the benchmark")
    return parser


def _dispatch(args: argparse.Namespace) -> int:
    from teduo_ray.config import load_config

    if args.command == "bench":
        import runpy

        import os

        sys.argv = [f"benchmarks.{args.name}", *args.args]
        sys.path.insert(0, os.getcwd())  # benchmarks/ lives in the repository, not the package
        try:
            runpy.run_module(f"benchmarks.{args.name}", run_name="__main__")
        except ImportError:
            raise TeduoError("benchmarks/ is not importable: run `teduo bench` from the repository root") from None
        return 0
    cfg = load_config(args.config, args.overrides)
    if args.command == "config":
        import yaml

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    from teduo_ray import pipeline

    progress = not args.no_progress
    if args.command == "run" and args.dry_run:
        from teduo_ray.plan import plan

        print(plan(cfg))
        return 0
    if args.command == "run":
        ran = pipeline.run_all(cfg, progress, until=args.until)
        say(f"ran: {', '.join(ran)}; outputs in {cfg.run_dir}, logs in {cfg.run_dir}/logs")
        return 0
    say(str(pipeline.run_stage(args.command, cfg, progress)))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console.setup(args.verbose)
    try:
        return _dispatch(args)
    except TeduoError as exc:
        print(f"teduo: error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)  # one line
        return 2
    except KeyboardInterrupt:
        print("teduo: interrupted; re-run the same command to resume", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
