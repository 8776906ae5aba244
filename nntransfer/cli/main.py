"""The ``nntransfer`` command.

    nntransfer run RECIPE [--experiment NAME] [--backend local|datajoint] [--schema NAME] [--workdir DIR] [--order original|random]
    nntransfer worker RECIPE [--experiment NAME] --schema NAME [--order ...] [--poll SECONDS]
    nntransfer status RECIPE [--experiment NAME] (--schema NAME | --workdir DIR)

Bad input (unknown recipe or experiment, a function that does not resolve, an unreachable database, a
schema or work folder that does not exist for ``status``) prints one line and exits with status 2;
failed training jobs exit with status 1 (``status`` shows their errors; ``--retry-failed`` runs them again).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from nntransfer.database import DatabaseError

logger = logging.getLogger("nntransfer")

EXIT_FAILED_JOBS = 1
EXIT_BAD_INPUT = 2


def _recipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe folder, .py file or dotted module name")
    parser.add_argument("--experiment", help="run only this module of the recipe folder")
    parser.add_argument("--order", choices=("original", "random"), default="original", help="order of the jobs")
    parser.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    parser.add_argument(
        "--retry-failed", action="store_true",
        help="run failed jobs again (datajoint backend; the local backend always retries failed steps)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nntransfer", description="Run and inspect nntransfer recipes.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train every step of a recipe's transfer experiments")
    _recipe_arguments(run)
    run.add_argument("--backend", choices=("local", "datajoint"), default="local")
    run.add_argument("--schema", help="DataJoint schema of the tables (datajoint backend)")
    run.add_argument("--workdir", default="./nntransfer_work", help="work folder (local backend)")

    worker = commands.add_parser("worker", help="populate the tables until every step is done or failed")
    _recipe_arguments(worker)
    worker.add_argument("--schema", required=True, help="DataJoint schema shared by the workers")
    worker.add_argument("--poll", type=float, default=2.0, help="seconds between checks while others train")

    status = commands.add_parser("status", help="done / running / failed / waiting per experiment and step")
    status.add_argument("recipe")
    status.add_argument("--experiment")
    where = status.add_mutually_exclusive_group()
    where.add_argument("--schema", help="read the tables of this schema")
    where.add_argument("--workdir", default=None, help="read this local work folder (default ./nntransfer_work)")

    try:
        from nntransfer.analysis.report import add_report_command
    except ImportError:  # the analysis package is optional for the runner
        add_report_command = None
    if add_report_command is not None:
        add_report_command(commands)
    return parser


def _configured_schema() -> Optional[str]:
    """The schema named in DataJoint's own configuration (``dj_local_conf.json``), if any."""
    import datajoint as dj

    return (dj.config.get("custom") or {}).get("nnfabrik.my_schema_name")


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    datajoint_logger = logging.getLogger("datajoint")
    datajoint_logger.propagate = False  # DataJoint has its own handler; avoid every line twice
    if quiet:
        datajoint_logger.setLevel(logging.WARNING)


def _run(args) -> int:
    from nntransfer.provenance import RecipeSource
    from nntransfer.recipes.loading import load_recipe
    from nntransfer.recipes.runner import FAILED, make_backend, status_table, validate_recipe

    backend_name = getattr(args, "backend", "datajoint")
    if backend_name == "datajoint" and not (args.schema or _configured_schema()):
        raise ValueError("the datajoint backend needs --schema NAME: the database schema of the tables")
    recipe = load_recipe(args.recipe, args.experiment)
    validate_recipe(recipe)
    RecipeSource.path = recipe.path
    progress = not args.quiet
    backend = make_backend(backend_name, workdir=getattr(args, "workdir", None), schema=args.schema, progress=progress)
    if args.retry_failed and backend_name == "datajoint":
        backend.clear_errors(recipe)
    if args.command == "run":
        backend.run(recipe, order=args.order)
    else:
        backend.work(recipe, order=args.order, poll_seconds=args.poll)
    rows = backend.status(recipe)
    print(status_table(rows))
    return EXIT_FAILED_JOBS if any(row.state == FAILED for row in rows) else 0


def _status(args) -> int:
    from nntransfer.recipes.loading import load_recipe
    from nntransfer.recipes.runner import make_backend, status_table

    recipe = load_recipe(args.recipe, args.experiment)
    if args.schema:
        backend = make_backend("datajoint", schema=args.schema, progress=False, create=False)
    else:
        backend = make_backend("local", workdir=args.workdir or "./nntransfer_work", progress=False, create=False)
    print(status_table(backend.status(recipe)))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(getattr(args, "quiet", False))
    try:
        if args.command in ("run", "worker"):
            return _run(args)
        if args.command == "status":
            return _status(args)
        return args.handler(args)
    except (ValueError, DatabaseError, FileNotFoundError) as err:
        logger.debug("bad input", exc_info=True)
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"nntransfer: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
