"""The ``nntransfer`` command.

    nntransfer run RECIPE [--experiment NAME] [--chain NAME] [--seed N] [STORE]
                   [--order original|random] [--fast-dev-run [BATCHES]] [--dry-run] [--rerun-changed | --reuse-changed]
    nntransfer worker RECIPE [--experiment NAME] STORE [--order ...] [--poll SECONDS] [--rerun-changed | --reuse-changed]
    nntransfer submit RECIPE STORE --workers N [--partition P] [--time HH:MM:SS] [--cpus-per-task C] [--mem M]
                      [--gpus-per-task G] [--setup LINE] [--slurm KEY=VALUE ...] [--requeue] [--log-dir DIR]
    nntransfer cancel STORE [--job ID]
    nntransfer search RECIPE --space SPACE --trials N [STORE] [--chain NAME] [--seed S] [--study NAME] [--then-seeds 1,2,3]
    nntransfer status RECIPE [--experiment NAME] [--chain NAME] [--seed N] [STORE]
    nntransfer report RECIPE [--experiment NAME] [--chain NAME] [--seed N] [STORE] [--out DIR]
    nntransfer diff A B [--recipe RECIPE] [STORE]
    nntransfer lineage STEP [--recipe RECIPE] [STORE]
    nntransfer forget STEP [--recipe RECIPE] [STORE] [--yes]
    nntransfer gc [STORE] [--dry-run] [--grace SECONDS]

STORE is ``--store ADDRESS`` (``local:DIR``, ``datajoint:SCHEMA``, or ``SCHEME:LOCATION`` of a backend registered
with ``nntransfer.pipeline.backends.register_store``) or a shortcut: ``--workdir DIR`` (``local:DIR``),
``--schema NAME`` (``datajoint:NAME``); the default is ``local:./nntransfer_work``. The CLI knows a store by its
address only (:mod:`nntransfer.pipeline.addresses` opens it), so a user's backend works with every command.

``run`` and ``worker`` also take the runtime options ``--device``, ``--data-dir`` and ``--num-workers``:
they change where and how steps run, never which experiment they are (they are not hashed).

Every sub-command is a handler ``(args) -> exit status`` set with ``set_defaults(handler=...)``; ``main``
calls it. Bad input (unknown recipe or experiment, a function that does not resolve, an unreachable
database, a schema or work folder that does not exist for ``status``, a step reference that names nothing)
prints one line and exits with status 2. Failed training jobs (``status`` shows their errors;
``--retry-failed`` runs them again), a database lost mid-job and a full disk exit with status 1. Ctrl-C (or
SIGTERM) prints how to resume and exits with status 130.

What is printed (stdout) is the command's result: tables, summaries, what to run next. Logs go to stderr
in one format for nntransfer and DataJoint (configured here, once), written around progress bars; progress
bars show only on a terminal.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from importlib import metadata
from typing import Any, Dict, List, Optional

from nntransfer.defaults import DEFAULT_WORKDIR, FAST_DEV_RUN_BATCHES
from nntransfer.errors import DatabaseError, DatabaseLost, StorageError
from nntransfer.pipeline.backends import DEFAULT_STORE, add_store_arguments, store_address
from nntransfer.recipes.selection import add_selection_arguments, select_chains
from nntransfer.terminal import PrintableStream, printable

# The pipeline, recipes and analysis load in the handlers: ``--help`` and ``--version`` answer at once, and
# a Ctrl-C while they load is handled like any other.

logger = logging.getLogger("nntransfer")

EXIT_FAILED_JOBS = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C
#: commands that only read a store: no "connected to ..." line before what they print
READ_ONLY_COMMANDS = ("diff", "lineage", "status", "report")
#: where ``report`` writes when no ``--out`` is given
DEFAULT_REPORT_DIR = "./nntransfer_report"
RESUME_LINE = ("nntransfer: interrupted; run the same command again to resume "
               "(finished steps are kept, the interrupted one continues from its last checkpoint)")  # fmt: skip

EXAMPLES = f"""\
examples:
  nntransfer run nntransfer.recipes.digits_transfer                 train (store {DEFAULT_STORE}: a work folder)
  nntransfer status nntransfer.recipes.digits_transfer              done / failed / waiting per step, with step ids
  nntransfer report nntransfer.recipes.digits_transfer              test accuracy, CSVs and plots ({DEFAULT_REPORT_DIR})
  nntransfer diff "digits 0-4 -> 5-9:1:0" "digits 0-4 -> 5-9:1:1" --recipe nntransfer.recipes.digits_transfer
                                                                    which settings differ between two steps
  nntransfer lineage "digits 0-4 -> 5-9:1:0" --recipe nntransfer.recipes.digits_transfer
                                                                    a step's ancestors and descendants
  nntransfer run nntransfer.recipes.digits_transfer --fast-dev-run  every pending step for 2 batches; stores nothing
  nntransfer run nntransfer.recipes.digits_transfer --dry-run       per step: reuse, train, changed or blocked; writes nothing
  nntransfer forget d710c56a                                        delete a stored step and the steps after it
  nntransfer run my_recipe --store datajoint:lab                    fill and populate the tables of schema lab (or --schema lab)
  nntransfer worker my_recipe --store datajoint:lab                 one of many workers sharing schema lab
  nntransfer submit my_recipe --store datajoint:lab --workers 8 --time 04:00:00 --gpus-per-task 1
                                                                    8 workers as one SLURM job array
  nntransfer cancel --store datajoint:lab                           stop them (each releases its step; submit again resumes)

RECIPE is a folder, a .py file or a dotted module. Run 'nntransfer COMMAND --help' for a command's options.
"""

REFERENCE_HELP = """\
A step is named by its id (or a unique prefix of at least 4 characters), as 'nntransfer status' and
'nntransfer run' print it; or, with --recipe, by NAME:SEED:STEP (a transfer experiment's name and seed
as 'status' prints them, and a step), NAME:SEED (the whole chain, at its last step) or NAME (when the
name has one seed). Ids are the same in a work folder and in the tables."""


def version() -> str:
    """The installed package's version (its metadata), else the source's."""
    try:
        return metadata.version("nntransfer")
    except metadata.PackageNotFoundError:
        import nntransfer

        return nntransfer.__version__


def quiet_argument(parser: argparse.ArgumentParser, what: str = "no progress bars, warnings only") -> None:
    """``--quiet``, which every command takes (nntransfer's and its libraries' logs at warnings only)."""
    parser.add_argument("--quiet", action="store_true", help=what)


def _recipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe folder, .py file or dotted module name")
    parser.add_argument("--experiment", help="run only this module of the recipe folder")
    add_selection_arguments(parser)
    parser.add_argument("--order", choices=("original", "random"), default="original", help="order of the jobs")
    quiet_argument(parser, "no progress bars, warnings only (nntransfer's and DataJoint's)")
    parser.add_argument(
        "--retry-failed", action="store_true",
        help="run failed jobs again (stores that keep failures, e.g. datajoint:; a work folder always retries failed steps)",
    )  # fmt: skip
    changed = parser.add_mutually_exclusive_group()  # a stored step whose user code changed stops the run otherwise
    changed.add_argument("--rerun-changed", action="store_true",
                         help="train stored steps whose code changed since, and the steps after them in their chains, again")
    changed.add_argument("--reuse-changed", action="store_true",
                         help="keep stored steps whose code changed since, and record in each that it was kept")  # fmt: skip
    runtime = parser.add_argument_group("runtime options (not hashed: the same experiment wherever it runs)")
    runtime.add_argument("--device", help="'cpu', 'cuda', 'cuda:1' or 'auto' (default: each trainer config's)")
    runtime.add_argument("--data-dir", help="folder the data sets are read from (default: each dataset config's)")
    runtime.add_argument("--num-workers", type=int, help="DataLoader worker processes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nntransfer", description="Run and inspect nntransfer recipes.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"nntransfer {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="train every step of a recipe's transfer experiments",
                              description="Train every step not done yet; print every step's state, a summary and what to run next.")  # fmt: skip
    _recipe_arguments(run)
    add_store_arguments(run, "train and keep steps in")
    run.add_argument("--backend", help=argparse.SUPPRESS)  # gone in 0.5.0: refused with the line that replaces it
    run.add_argument("--fast-dev-run", nargs="?", const=FAST_DEV_RUN_BATCHES, type=int, metavar="BATCHES",
                     help=f"check instead of train: every step not stored yet, for BATCHES (default {FAST_DEV_RUN_BATCHES}) "
                          "batches of training, validation and each test set, handing on what the chain needs; "
                          "stores nothing; exits 1 if a step broke")  # fmt: skip
    run.add_argument("--dry-run", action="store_true",
                     help="print what a run would do per step (reuse, train, changed, blocked) after the checks before "
                          "training; trains and writes nothing")  # fmt: skip
    run.set_defaults(handler=run_command)

    worker = commands.add_parser("worker", help="populate the tables until every step is done or failed")
    _recipe_arguments(worker)
    add_store_arguments(worker, "share", required=True)
    worker.add_argument("--poll", type=float, default=2.0, help="seconds between checks while others train")
    worker.set_defaults(handler=run_command, backend=None)

    submit = commands.add_parser(
        "submit", help="check a recipe, fill the tables and submit N workers to SLURM as one job array",
        description="Check the recipe as 'run' does (nothing is submitted when a check fails), fill the store's "
                    "tables and submit N 'nntransfer worker' tasks with the same recipe, store and runtime options "
                    "as one SLURM job array (through submitit). The store must be one every node reaches: "
                    "datajoint:SCHEMA, with NNTRANSFER_STORE an absolute path on a shared filesystem.",
    )  # fmt: skip
    _recipe_arguments(submit)
    add_store_arguments(submit, "share between the workers", required=True)
    submit.add_argument("--workers", type=int, required=True, metavar="N", help="worker tasks in the array")
    cluster = submit.add_argument_group("SLURM options (what each task asks for; unset: the cluster's defaults)")
    cluster.add_argument("--partition", help="the partition to run in")
    cluster.add_argument("--time", metavar="HH:MM:SS", help="time limit of each task (any SLURM form: 30, 02:00:00, 1-12:00:00)")
    cluster.add_argument("--cpus-per-task", type=int, metavar="C", help="CPUs per worker")
    cluster.add_argument("--mem", metavar="M", help="memory per worker (e.g. 16G)")
    cluster.add_argument("--gpus-per-task", type=int, metavar="G", help="GPUs per worker (the worker uses the ones SLURM gives it)")
    cluster.add_argument("--setup", action="append", default=[], metavar="LINE",
                         help="a shell line run before each worker, e.g. 'module load cuda' (repeatable)")  # fmt: skip
    cluster.add_argument("--slurm", action="append", default=[], metavar="KEY=VALUE",
                         help="any other sbatch option, e.g. --slurm account=lab --slurm qos=high (repeatable)")  # fmt: skip
    cluster.add_argument("--requeue", action="store_true",
                         help="requeue a task that reaches its time limit (up to 3 times; it resumes from its checkpoint), "
                              "and let SLURM requeue one after a node failure or a preemption")
    cluster.add_argument("--log-dir", default=None, metavar="DIR",
                         help="folder of the workers' logs, on a filesystem the nodes share (default ./nntransfer_slurm)")  # fmt: skip
    submit.add_argument("--poll", type=float, default=2.0, help="seconds between a worker's checks while others train")
    searching = submit.add_argument_group("a search instead (see 'nntransfer search'): the tasks run its trials, sharing its study")
    searching.add_argument("--space", help="the search space: a .py file or module defining `space`")
    searching.add_argument("--trials", type=int, metavar="N", help="trials the study is to have")
    searching.add_argument("--study", help="the study's name (default RECIPE:CHAIN:seed SEED)")
    submit.set_defaults(handler=submit_command)

    cancel = commands.add_parser(
        "cancel", help="cancel the SLURM job arrays submitted for a store",
        description="scancel the job arrays 'nntransfer submit' submitted for the store that still have tasks "
                    "queued or running. Each running worker releases its step at once and keeps its checkpoint; "
                    "submitting again resumes where they stopped.",
    )  # fmt: skip
    add_store_arguments(cancel, "whose job arrays to cancel", required=True)
    cancel.add_argument("--job", help="cancel only this job array (its id, as submit and status print it)")
    quiet_argument(cancel, "warnings only (the command's own output as always)")
    cancel.set_defaults(handler=cancel_command)

    search = commands.add_parser(
        "search", help="search a chain's settings (Optuna); each trial an ordinary chain in the store",
        description="Train trials of the search space SPACE (a .py file or module defining `space = SearchSpace(...)`) "
                    "over one chain of the recipe until the study has N trials. Each trial is an ordinary chain in "
                    "the store (steps it shares with earlier trials are reused); the study lives beside the steps "
                    "(the work folder's search.sqlite3, or the schema), so several 'nntransfer search' processes "
                    "share it and running the same search again continues it.",
    )  # fmt: skip
    search.add_argument("recipe", help="recipe folder, .py file or dotted module name")
    search.add_argument("--experiment", help="only this module of the recipe folder")
    search.add_argument("--space", required=True, help="the search space: a .py file or module defining `space`")
    search.add_argument("--trials", type=int, required=True, metavar="N", help="trials the study is to have")
    search.add_argument("--chain", help="the chain to search (default: the space's chain)")
    search.add_argument("--seed", type=int, help="its seed (default: its first)")
    search.add_argument("--study", help="the study's name (default RECIPE:CHAIN:seed SEED)")
    search.add_argument("--then-seeds", default="", metavar="S,S,...",
                        help="then train the best setting on these seeds, as ordinary chains (mean ± std over them)")  # fmt: skip
    quiet_argument(search)
    add_store_arguments(search, "train the trials in and keep the study in")
    runtime = search.add_argument_group("runtime options (not hashed: the same experiment wherever it runs)")
    runtime.add_argument("--device", help="'cpu', 'cuda', 'cuda:1' or 'auto' (default: each trainer config's)")
    runtime.add_argument("--data-dir", help="folder the data sets are read from (default: each dataset config's)")
    runtime.add_argument("--num-workers", type=int, help="DataLoader worker processes")
    search.set_defaults(handler=search_command)

    status = commands.add_parser("status", help="done / running / failed / waiting per experiment and step")
    status.add_argument("recipe", help="recipe folder, .py file or dotted module name")
    status.add_argument("--experiment", help="only this module of the recipe folder")
    add_selection_arguments(status)
    add_store_arguments(status)
    quiet_argument(status, "warnings only (the command's own output as always)")
    status.set_defaults(handler=status_command)

    from nntransfer.analysis.report import add_report_command  # its flags, and --out's default below

    add_report_command(commands)
    _default_report_folder(commands.choices["report"])

    diff = commands.add_parser(
        "diff", help="which settings make two experiments, steps or chains differ",
        description="Which settings make A and B differ: per step and role (dataset, model, trainer, seed, chain) "
                    "the fields whose values differ, with A's and B's value; when the steps' histories differ, "
                    "the steps before them too.",
        epilog=REFERENCE_HELP + '\n\nexample:\n  nntransfer diff "digits 0-4 -> 5-9:1:0" "digits 0-4 -> 5-9:1:1" '
                                "--recipe nntransfer.recipes.digits_transfer\n  nntransfer diff d710c56a 0abab785 --store local:./nntransfer_work    (ids as 'status' prints them)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    diff.add_argument("a", metavar="A", help="a step id or NAME:SEED[:STEP] (see below)")
    diff.add_argument("b", metavar="B", help="the same for the other side")
    _reference_arguments(diff)
    quiet_argument(diff, "warnings only (the command's own output as always)")
    diff.set_defaults(handler=diff_command)

    lineage = commands.add_parser(
        "lineage", help="a stored step's ancestors and descendants across chains",
        description="The chain a step continues (step 0 first) and every stored step that continues from it, "
                    "in any chain of the work folder or schema, as a tree.",
        epilog=REFERENCE_HELP + "\n\nexamples:\n  nntransfer lineage d710c56a --store local:./nntransfer_work    (an id as 'status' prints it)\n"
                                '  nntransfer lineage "digits 0-4 -> 5-9:1:0" --recipe nntransfer.recipes.digits_transfer',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    lineage.add_argument("step", metavar="STEP", help="a step id or NAME:SEED:STEP (see below)")
    _reference_arguments(lineage)
    quiet_argument(lineage, "warnings only (the command's own output as always)")
    lineage.set_defaults(handler=lineage_command)

    gc = commands.add_parser(
        "gc", help="remove the files no stored step references (what killed runs and workers leave)",
        description="Remove what no stored step references, once older than --grace (a live run's file is young): "
                    "in a schema's external stores, files no entry registers (a killed worker's partial *.copying "
                    "copy, the upload of a transaction that rolled back) and entries no row references; in a work "
                    "folder, the temporary files of stopped runs.",
    )  # fmt: skip
    add_store_arguments(gc, "collect the files of")
    gc.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    gc.add_argument("--grace", type=float, default=3600.0, metavar="SECONDS",
                    help="leave what is younger than this (default 3600)")  # fmt: skip
    quiet_argument(gc, "warnings only (the command's own output as always)")
    gc.set_defaults(handler=gc_command)

    forget = commands.add_parser(
        "forget", help="delete a stored step and every step stored after it, so that 'run' trains them again",
        description="Delete a stored step and its descendants (every stored step of any chain that continues from it, "
                    "as 'lineage' shows them), with their weights, handed-on data, checkpoints and failure records. "
                    "Lists them and asks first (answer y); without a terminal, --yes is needed.",
        epilog=REFERENCE_HELP + "\n\nexamples:\n  nntransfer forget d710c56a --store local:./nntransfer_work\n"
                                '  nntransfer forget "digits 0-4 -> 5-9:1:1" --recipe nntransfer.recipes.digits_transfer --yes',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    forget.add_argument("step", metavar="STEP", help="a step id or NAME:SEED:STEP (see below)")
    _reference_arguments(forget)
    forget.add_argument("--yes", action="store_true", help="delete without asking")
    quiet_argument(forget, "warnings only (the command's own output as always)")
    forget.set_defaults(handler=forget_command)
    return parser


def _reference_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recipe", help="recipe whose NAME:SEED:STEP references are used (and whose steps are shown if not stored)")
    parser.add_argument("--experiment", help="only this module of the recipe folder")
    add_store_arguments(parser)


def _default_report_folder(report: argparse.ArgumentParser) -> None:
    """``report --out`` is optional here: it defaults to :data:`DEFAULT_REPORT_DIR`, printed after the report."""
    for action in report._actions:  # argparse keeps no public handle on an added argument's action
        if action.dest == "out":
            action.required = False
            action.default = None
            action.help = f"folder for the CSVs and PNGs (default {DEFAULT_REPORT_DIR})"
    report_handler = report.get_default("handler")

    def handler(args: argparse.Namespace) -> int:
        args.out = args.out or DEFAULT_REPORT_DIR
        status = report_handler(args)
        print(f"report written to {args.out}")
        return status

    report.set_defaults(handler=handler)


def _runtime_overrides(args: argparse.Namespace) -> Dict[str, Dict[str, Any]]:
    dataset = {k: v for k, v in (("data_dir", args.data_dir), ("num_workers", args.num_workers)) if v is not None}
    trainer = {"device": args.device} if args.device else {}
    return {"dataset": dataset, "trainer": trainer}


def setup_logging(quiet: bool = False) -> None:
    """One format (``nntransfer.pipeline.runner.LOG_FORMAT``) for every log line, on stderr, written around
    progress bars. Configures the root logger once (a handler already there, e.g. a test's, is kept);
    ``quiet`` keeps warnings only. A store's backend makes its libraries log the same way
    (``Store.configure_logging``, called by :func:`main`)."""
    from nntransfer.pipeline.runner import log_handler

    root = logging.getLogger()
    if not root.handlers:  # configured once: a handler someone else installed (a test's, an embedding program's) stays
        root.addHandler(log_handler())
        root.setLevel(logging.WARNING if quiet else logging.INFO)


def _score_label(recipe) -> str:
    """The header of the score column: ``val <objective>`` when every step's trainer scores on the
    validation set with one objective, else ``score``."""
    objectives, validated = set(), True
    for chain in recipe.transfer_experiments.values():
        for step in chain:
            objectives.add(getattr(step.trainer, "objective", None))
            validated &= getattr(step.dataset, "valid_size", None) != 0  # no validation set: the training objective
    (objective,) = objectives if len(objectives) == 1 else (None,)
    return f"val {objective}" if objective and validated else "score"


def _step_table(recipe, rows) -> str:
    from nntransfer.pipeline.store import status_table

    return status_table(rows, score_label=_score_label(recipe))


def _recipe_words(args: argparse.Namespace) -> str:
    words = [args.recipe] + (["--experiment", args.experiment] if args.experiment else [])
    words += [w for name in args.chain or () for w in ("--chain", name)] + [w for seed in args.seed or () for w in ("--seed", str(seed))]
    return " ".join(shlex.quote(w) for w in words)


def _address(args: argparse.Namespace, default: Optional[str] = DEFAULT_STORE) -> Optional[str]:
    """The store address a command's ``--store``, ``--workdir`` or ``--schema`` names (``default`` if none)."""
    return store_address(args.store, args.workdir, args.schema, default=default)


def _where_words(args: argparse.Namespace) -> str:
    address = _address(args)
    return "" if address == DEFAULT_STORE else f"--store {shlex.quote(address)}"


def run_command(args: argparse.Namespace) -> int:
    """``run`` and ``worker``: train what is not done, print every step's status, a summary, what next."""
    from nntransfer.pipeline.runner import run_experiments
    from nntransfer.recipes.loading import load_recipe

    if args.backend is not None:
        raise ValueError("--backend is gone: name the store with --store ADDRESS (datajoint:SCHEMA or local:DIR), "
                         "or its shortcuts --schema SCHEMA and --workdir DIR")
    if getattr(args, "fast_dev_run", None) is not None and args.fast_dev_run < 1:
        raise ValueError(f"--fast-dev-run takes a number of batches of at least 1, got {args.fast_dev_run}")
    recipe = select_chains(load_recipe(args.recipe, args.experiment), args.chain, args.seed)
    rows = run_experiments(
        recipe, store=_address(args), order=args.order,
        progress=not args.quiet, runtime=_runtime_overrides(args), worker=args.command == "worker",
        retry_failed=args.retry_failed, poll_seconds=getattr(args, "poll", 2.0), resume_hint=None,
        fast_dev_run=getattr(args, "fast_dev_run", None) or False, rerun_changed=args.rerun_changed,
        reuse_changed=args.reuse_changed, dry_run=getattr(args, "dry_run", False),
    )  # fmt: skip
    if getattr(args, "dry_run", False):
        print(rows)  # the plan
        return 0
    print(_step_table(recipe, rows))
    if getattr(args, "fast_dev_run", None):
        return _fast_dev_run_report(recipe, rows)
    summary = rows.summary
    print(f"\n{summary}; results in {summary.where}")
    where = " ".join(w for w in (_recipe_words(args), _where_words(args)) if w)
    if summary.failed:
        from nntransfer.pipeline.addresses import backend_of

        retry = "" if backend_of(_address(args)).retries_failures else " --retry-failed"
        print(f"next: fix what failed (errors above; 'nntransfer status {where}' shows them) and run the same command{retry} again")
    elif summary.other:
        print(f"next: 'nntransfer status {where}' shows the steps still to do; run the same command again to train them")
    else:
        print(f"next: nntransfer report {where}    (test accuracy, CSVs and plots)")
    return EXIT_FAILED_JOBS if summary.failed else 0


def _fast_dev_run_report(recipe, rows) -> int:
    """After ``run --fast-dev-run``'s table: one line per step that broke, the summary; 1 if any broke."""
    for row in rows.broken:
        print(f"broke: {row.name} (seed {row.seed}) step {row.step} [{row.short_id}]: {row.error.splitlines()[0]}")
    print(f"\n{rows.summary}")
    if not rows.summary.checked:
        print("nothing to check: every step is stored ('nntransfer forget STEP' deletes one so that it is checked and trained again)")
    return EXIT_FAILED_JOBS if rows.broken else 0


def status_command(args: argparse.Namespace) -> int:
    """``status``: the state of every step, read from the work folder or the tables (never created)."""
    from nntransfer.analysis.searches import search_report
    from nntransfer.cluster.slurm import array_report
    from nntransfer.pipeline.addresses import open_store
    from nntransfer.pipeline.drift import current_drift, mark_drift
    from nntransfer.pipeline.store import step_status
    from nntransfer.recipes.loading import load_recipe

    recipe = select_chains(load_recipe(args.recipe, args.experiment), args.chain, args.seed)
    store = open_store(_address(args), read_only=True)
    print(_step_table(recipe, mark_drift(step_status(store, recipe), current_drift(store, recipe))))
    arrays = array_report(store)
    searches = search_report(store, recipe.name, brief=True)
    for lines in (arrays, searches):
        if lines:
            print("\n" + "\n".join(lines))
    return 0


def submit_command(args: argparse.Namespace) -> int:
    """``submit``: check, fill the tables, submit the job array; print its id, its logs, what to run next."""
    from nntransfer.cluster.submit import DEFAULT_LOG_DIR, submit

    parameters = {}
    for item in args.slurm:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise ValueError(f"--slurm takes KEY=VALUE (an sbatch option without its dashes), not {item!r}")
        parameters[key.strip()] = value
    if args.workers < 1:
        raise ValueError(f"--workers takes a number of at least 1, got {args.workers}")
    submission = submit(
        args.recipe, store=_address(args), workers=args.workers, experiment=args.experiment, chains=args.chain,
        seeds=args.seed, order=args.order, runtime=_runtime_overrides(args), partition=args.partition, time=args.time,
        cpus_per_task=args.cpus_per_task, mem=args.mem, gpus_per_task=args.gpus_per_task, setup=args.setup,
        slurm_parameters=parameters, requeue=args.requeue, log_dir=args.log_dir or DEFAULT_LOG_DIR,
        retry_failed=args.retry_failed, rerun_changed=args.rerun_changed, reuse_changed=args.reuse_changed,
        poll_seconds=args.poll, progress=not args.quiet, space=args.space, trials=args.trials, study=args.study,
    )  # fmt: skip
    where = " ".join(w for w in (_recipe_words(args), _where_words(args)) if w)
    if submission is None and args.space:
        print(f"nothing submitted: the study has {args.trials} trial(s) already ('nntransfer report {where}' shows it)")
        return 0
    if submission is None:
        retry = "" if args.retry_failed else "; --retry-failed trains failed ones again"
        print(f"nothing submitted: no step waits to be trained ('nntransfer status {where}' shows each: done, failed "
              f"or held by a running worker{retry})")
        return 0
    print(f"submitted SLURM job {submission.job_id}: {submission.tasks} worker(s) for {_address(args)}")
    task = "_<task>" if submission.tasks > 1 else ""  # one worker is one job, not an array of one (submitit)
    print(f"logs: {submission.log_dir}/{submission.job_id}{task}_0_log.out")
    print(f"next: nntransfer status {where}    (steps, and the job's tasks pending / running / finished)")
    print(f"stop: nntransfer cancel {_where_words(args)}    (each worker releases its step; submit again resumes)")
    return 0


def search_command(args: argparse.Namespace) -> int:
    """``search``: run trials until the study has ``--trials``; print the best setting and what next."""
    from nntransfer.search.run import run_search

    try:
        seeds = [int(word) for word in args.then_seeds.split(",") if word.strip()]
    except ValueError:
        raise ValueError(f"--then-seeds takes whole numbers separated by commas (1,2,3), not {args.then_seeds!r}") from None
    result = run_search(args.recipe, args.space, args.trials, store=_address(args), experiment=args.experiment,
                        chain=args.chain, seed=args.seed, study=args.study, then_seeds=seeds,
                        runtime=_runtime_overrides(args), progress=not args.quiet)  # fmt: skip
    print(result)
    where = " ".join(w for w in (shlex.quote(args.recipe), _where_words(args)) if w)
    print(f"next: nntransfer report {where}    (the search beside the results; nntransfer.search.trials_frame(study, store) in Python)")
    return 0


def cancel_command(args: argparse.Namespace) -> int:
    """``cancel``: scancel the store's active job arrays."""
    from nntransfer.cluster.submit import cancel

    cancelled = cancel(store=_address(args), job=args.job)
    if not cancelled:
        print("no job array submitted for this store has tasks queued or running")
    for state in cancelled:
        print(f"cancelled {state}")
    if cancelled:
        print("running workers release their steps (checkpoints kept); 'nntransfer submit' again resumes them")
    return 0


def _reference_context(args: argparse.Namespace) -> Dict[str, Any]:
    """Where ``diff``, ``lineage`` and ``forget`` look steps up: the store named (the default work folder only
    if it exists, when a recipe is given), and the recipe."""
    from pathlib import Path

    address = _address(args, default=None)
    if address is None and (args.recipe is None or Path(DEFAULT_WORKDIR).is_dir()):
        address = DEFAULT_STORE
    return dict(store=address, recipe=args.recipe, experiment=args.experiment)


def diff_command(args: argparse.Namespace) -> int:
    """``diff``: the settings behind two step hashes."""
    from nntransfer.analysis.diff import diff

    print(diff(args.a, args.b, **_reference_context(args)))
    return 0


def lineage_command(args: argparse.Namespace) -> int:
    """``lineage``: a step's ancestors and descendants, as a tree."""
    from nntransfer.analysis.lineage import lineage

    print(lineage(args.step, **_reference_context(args)))
    return 0


def gc_command(args: argparse.Namespace) -> int:
    """``gc``: list, and unless ``--dry-run`` remove, the files no stored step references."""
    from nntransfer.pipeline.addresses import open_store

    garbage = open_store(_address(args), create=False).collect_garbage(dry_run=args.dry_run, grace_seconds=args.grace)
    for path in garbage.paths:
        print(path)
    print(garbage)
    for error in garbage.errors:
        print(f"    could not remove {error}")
    return EXIT_FAILED_JOBS if garbage.errors else 0


def forget_command(args: argparse.Namespace) -> int:
    """``forget``: list a stored step and its descendants, ask, delete them."""
    from nntransfer.analysis.forget import plan_forget

    if not args.yes and not sys.stdin.isatty():  # before anything is read: a script must say --yes
        raise ValueError("forget deletes stored steps and asks first; without a terminal, pass --yes")
    plan = plan_forget(args.step, **_reference_context(args))
    print(f"{len(plan.records)} step(s) to delete from {plan.store.where} (the step and every step stored after it):")
    print(plan)
    if not args.yes:
        answer = input("delete them? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return EXIT_FAILED_JOBS
    deleted = plan.execute()
    print(f"deleted {len(deleted)} step(s); running their recipes again trains them again")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    stdout, sys.stdout = sys.stdout, PrintableStream(sys.stdout)  # names and errors come from others' files
    try:
        return _main(argv)
    finally:
        sys.stdout = stdout


def _main(argv: Optional[List[str]]) -> int:
    try:
        args = build_parser().parse_args(argv)
        quiet = getattr(args, "quiet", False)
        setup_logging(quiet)
        address = _address(args, default=None) if hasattr(args, "store") else None
        if address is not None:  # checked before anything loads; the backend's libraries log like ours
            from nntransfer.pipeline.addresses import backend_of

            logging.disable(logging.INFO)  # what they log while they load (config files found or not) stays silent
            try:
                backend = backend_of(address)
            finally:
                logging.disable(logging.NOTSET)
            backend.configure_logging(quiet, connection_line=args.command not in READ_ONLY_COMMANDS)
        return args.handler(args)
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM during a run: finished steps are kept
        print(RESUME_LINE, file=sys.stderr)
        return EXIT_INTERRUPTED
    except (DatabaseLost, StorageError) as err:  # the job did not finish; running again resumes it
        logger.debug("interrupted", exc_info=True)
        print(f"nntransfer: error: {_first_line(err)}", file=sys.stderr)
        return EXIT_FAILED_JOBS
    except (ValueError, DatabaseError, FileNotFoundError) as err:
        logger.debug("bad input", exc_info=True)
        for line in getattr(err, "problems", None) or [_first_line(err)]:  # the preflight reports every problem
            print(f"nntransfer: error: {printable(line)}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _first_line(err: BaseException) -> str:
    return printable(str(err).splitlines()[0]) if str(err) else type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
