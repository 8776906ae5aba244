"""``nntransfer report``: a recipe's results as CSVs and PNGs in one folder.

    nntransfer report RECIPE [--experiment NAME] [--schema NAME | --workdir DIR] --out DIR
                      [--split test] [--objective accuracy]

writes ``status.csv``, ``curves.csv``, ``final.csv``, ``summary.csv`` (see
``nntransfer.analysis.results``) and the PNGs of ``nntransfer.analysis.plots.plot_all`` to ``--out``, and
prints the summary table (mean and std over seeds per experiment and transfer step).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Dict, Union

from nntransfer.defaults import DEFAULT_WORKDIR

logger = logging.getLogger(__name__)


def write_report(results, out: Union[str, Path], split: str = "test", objective: str = "accuracy") -> Dict[str, Path]:
    """Write the frames of ``results`` (:class:`~nntransfer.analysis.results.Results`) as CSVs and every
    plot as a PNG into ``out``; returns name -> path of everything written."""
    from nntransfer.analysis.plots import plot_all  # matplotlib only when a report is written

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frames = {
        "status": results.status,
        "curves": results.curves,
        "final": results.final,
        "summary": results.summary(split, objective),
    }
    written: Dict[str, Path] = {}
    for name, frame in frames.items():
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False)
        written[name] = path
    for name in plot_all(results, out=out, split=split, objective=objective, close=True):
        written[name] = out / f"{name}.png"
    return written


def summary_text(summary, objective: str = "accuracy") -> str:
    """The summary frame as a plain-text table: name, step, comment, seeds done, mean ± std."""
    lines = summary.assign(
        seeds=[f"{d}/{n}" for d, n in zip(summary["n_done"], summary["n_seeds"])],
        **{objective: [f"{m:.2f} ± {s:.2f}" if m == m else "-" for m, s in zip(summary["mean"], summary["std"])]},
    )
    return lines[["name", "step", "comment", "seeds", objective]].to_string(index=False)


def run_report(args: argparse.Namespace) -> int:
    """The handler of ``nntransfer report``."""
    from nntransfer.analysis.results import load_results

    workdir = None if args.schema else (args.workdir or DEFAULT_WORKDIR)
    results = load_results(args.recipe, args.experiment, workdir=workdir, schema=args.schema)
    written = write_report(results, args.out, args.split, args.objective)
    logger.info("wrote %s to %s", ", ".join(path.name for path in written.values()), args.out)
    print(f"{results.recipe} ({results.where}): {args.split} {args.objective}, mean ± std over seeds")
    print(summary_text(results.summary(args.split, args.objective), args.objective))
    if not results.incomplete.empty:
        chains = results.incomplete.groupby(["name", "seed"]).ngroups
        print(f"{chains} chain(s) incomplete; see {Path(args.out) / 'status.csv'}")
    return 0


def add_report_command(subparsers) -> None:
    """Add ``report`` to the ``nntransfer`` command's sub-commands."""
    report = subparsers.add_parser("report", help="write a recipe's results as CSVs and PNGs, print a summary")
    report.add_argument("recipe", help="recipe folder, .py file or dotted module name")
    report.add_argument("--experiment", help="only this module of the recipe folder")
    where = report.add_mutually_exclusive_group()
    where.add_argument("--schema", help="read the tables of this schema")
    where.add_argument("--workdir", default=None, help=f"read this local work folder (default {DEFAULT_WORKDIR})")
    report.add_argument("--out", required=True, help="folder for the CSVs and PNGs")
    report.add_argument("--split", default="test", help="split of the summary and bar plots (default test)")
    report.add_argument("--objective", default="accuracy", help="objective to summarise and plot (default accuracy)")
    report.add_argument("--quiet", action="store_true", help="warnings only")
    report.set_defaults(handler=run_report)
