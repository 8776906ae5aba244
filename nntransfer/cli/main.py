"""The ``nntransfer`` command.

    nntransfer run RECIPE [--experiment NAME] [--backend local|datajoint] [--schema NAME] [--workdir DIR] [--order original|random]
    nntransfer worker RECIPE [--experiment NAME] --schema NAME [--order ...] [--poll SECONDS]
    nntransfer status RECIPE [--experiment NAME] (--schema NAME | --workdir DIR)
    nntransfer report RECIPE [--experiment NAME] (--schema NAME | --workdir DIR) --out DIR

``run`` and ``worker`` also take the runtime options ``--device``, ``--data-dir`` and ``--num-workers``:
they change where and how steps run, never which experiment they are (they are not hashed).

Every sub-command is a handler ``(args) -> exit status`` set with ``set_defaults(handler=...)``; ``main``
calls it. Bad input (unknown recipe or experiment, a function that does not resolve, an unreachable
database, a schema or work folder that does not exist for ``status``) prints one line and exits with
status 2. Failed training jobs (``status`` shows their errors; ``--retry-failed`` runs them again), a
database lost mid-job and a full disk exit with status 1. Ctrl-C (or SIGTERM) prints how to resume and
exits with status 130.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Dict, List, Optional

from nntransfer.analysis.report import add_report_command
from nntransfer.defaults import DEFAULT_WORKDIR
from nntransfer.errors import DatabaseError, DatabaseLost, StorageError
from nntransfer.pipeline.runner import open_store, run_experiments
from nntransfer.pipeline.store import FAILED, status_table, step_status
from nntransfer.recipes.loading import load_recipe

logger = logging.getLogger("nntransfer")

EXIT_FAILED_JOBS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C


def _recipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe folder, .py file or dotted module name")
    parser.add_argument("--experiment", help="run only this module of the recipe folder")
    parser.add_argument("--order", choices=("original", "random"), default="original", help="order of the jobs")
    parser.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    parser.add_argument(
        "--retry-failed", action="store_true",
        help="run failed jobs again (datajoint backend; the local backend always retries failed steps)",
    )  # fmt: skip
    runtime = parser.add_argument_group("runtime options (not hashed: the same experiment wherever it runs)")
    runtime.add_argument("--device", help="'cpu', 'cuda', 'cuda:1' or 'auto' (default: each trainer config's)")
    runtime.add_argument("--data-dir", help="folder the data sets are read from (default: each dataset config's)")
    runtime.add_argument("--num-workers", type=int, help="DataLoader worker processes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nntransfer", description="Run and inspect nntransfer recipes.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train every step of a recipe's transfer experiments")
    _recipe_arguments(run)
    run.add_argument("--backend", choices=("local", "datajoint"), default="local",
                     help="local: train in this process, results in --workdir; datajoint: the tables of --schema")  # fmt: skip
    run.add_argument("--schema", help="DataJoint schema of the tables (datajoint backend)")
    run.add_argument("--workdir", default=DEFAULT_WORKDIR, help=f"work folder (local backend; default {DEFAULT_WORKDIR})")
    run.set_defaults(handler=run_command)

    worker = commands.add_parser("worker", help="populate the tables until every step is done or failed")
    _recipe_arguments(worker)
    worker.add_argument("--schema", required=True, help="DataJoint schema shared by the workers")
    worker.add_argument("--poll", type=float, default=2.0, help="seconds between checks while others train")
    worker.set_defaults(handler=run_command, backend="datajoint", workdir=None)

    status = commands.add_parser("status", help="done / running / failed / waiting per experiment and step")
    status.add_argument("recipe", help="recipe folder, .py file or dotted module name")
    status.add_argument("--experiment", help="only this module of the recipe folder")
    where = status.add_mutually_exclusive_group()
    where.add_argument("--schema", help="read the tables of this schema")
    where.add_argument("--workdir", default=None, help=f"read this local work folder (default {DEFAULT_WORKDIR})")
    status.set_defaults(handler=status_command)

    add_report_command(commands)
    return parser


def _runtime_overrides(args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    dataset = {k: v for k, v in (("data_dir", args.data_dir), ("num_workers", args.num_workers)) if v is not None}
    trainer = {"device": args.device} if args.device else {}
    return {"dataset": dataset, "trainer": trainer}


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    datajoint_logger = logging.getLogger("datajoint")  # no import: DataJoint loads only for the tables
    datajoint_logger.propagate = False  # DataJoint has its own handler; avoid every line twice
    if quiet:
        datajoint_logger.setLevel(logging.WARNING)


def run_command(args: argparse.Namespace) -> int:
    """``run`` and ``worker``: train what is not done, print every step's status."""
    if args.backend == "datajoint" and not args.schema:
        raise ValueError("the datajoint backend needs --schema NAME: the database schema of the tables")
    recipe = load_recipe(args.recipe, args.experiment)
    rows = run_experiments(
        recipe, backend=args.backend, workdir=args.workdir, schema=args.schema, order=args.order,
        progress=not args.quiet, runtime=_runtime_overrides(args), worker=args.command == "worker",
        retry_failed=args.retry_failed, poll_seconds=getattr(args, "poll", 2.0),
    )  # fmt: skip
    print(status_table(rows))
    return EXIT_FAILED_JOBS if any(row.state == FAILED for row in rows) else 0


def status_command(args: argparse.Namespace) -> int:
    """``status``: the state of every step, read from the work folder or the tables (never created)."""
    recipe = load_recipe(args.recipe, args.experiment)
    if args.schema:
        store = open_store("datajoint", schema=args.schema, create=False)
    else:
        store = open_store("local", workdir=args.workdir or DEFAULT_WORKDIR, create=False)
    print(status_table(step_status(store, recipe)))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(getattr(args, "quiet", False))
    try:
        return args.handler(args)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM during a run: finished steps are kept
        print("nntransfer: interrupted; run the same command again to resume (finished steps are kept, "
              "the interrupted one continues from its last checkpoint)", file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    except (DatabaseLost, StorageError) as err:  # the job did not finish; running again resumes it
        logger.debug("interrupted", exc_info=True)
        print(f"nntransfer: error: {_first_line(err)}", file=sys.stderr)
        return EXIT_FAILED_JOBS
    except (ValueError, DatabaseError, FileNotFoundError) as err:
        logger.debug("bad input", exc_info=True)
        print(f"nntransfer: error: {_first_line(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
