"""``nntransfer report``: a recipe's results as CSVs and PNGs in one folder.

    nntransfer report RECIPE [--experiment NAME] [--schema NAME | --workdir DIR] --out DIR
                      [--split test] [--objective accuracy]

writes ``status.csv``, ``steps.csv``, ``curves.csv``, ``final.csv``, ``summary.csv`` (every split; see
``nntransfer.analysis.results``), the transfer metrics ``transfer_gain.csv``, ``forgetting.csv`` and
``accuracy_matrix.csv`` (see ``nntransfer.analysis.metrics``) and the PNGs of
``nntransfer.analysis.plots.plot_all`` to ``--out``, and prints the summary and the metrics.
"""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Dict, Union

from nntransfer.defaults import DEFAULT_WORKDIR

logger = logging.getLogger(__name__)


def write_report(results, out: Union[str, Path], split: str = "test", objective: str = "accuracy") -> Dict[str, Path]:
    """Write the frames of ``results`` (:class:`~nntransfer.analysis.results.Results`), the summary over
    every split, the transfer metrics (``objective``; the gain on ``split``) as CSVs and every plot as a
    PNG (the bar plot on ``split``) into ``out``; returns name -> path of everything written."""
    from nntransfer.analysis.metrics import accuracy_matrix, forgetting, transfer_gain
    from nntransfer.analysis.plots import plot_all  # matplotlib only when a report is written

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frames = {
        "status": results.status,
        "steps": results.steps,
        "curves": results.curves,
        "final": results.final,
        "summary": results.summary(None, objective),
    }
    final = results.final
    if ((final["test_set"] != "") & (final["objective"] == objective)).any():  # metrics need a test set
        frames["transfer_gain"] = transfer_gain(results, split, objective)
        frames["forgetting"] = forgetting(results, objective)
    else:
        logger.warning("no step has %s results on a test set: no transfer metrics", objective)
    written: Dict[str, Path] = {}
    for name, frame in frames.items():
        path = out / f"{name}.csv"
        frame.to_csv(path, index=False)
        written[name] = path
    if "transfer_gain" in frames:
        written["accuracy_matrix"] = out / "accuracy_matrix.csv"
        accuracy_matrix(results, objective).to_csv(written["accuracy_matrix"])
    for name in plot_all(results, out=out, split=split, objective=objective, close=True):
        written[f"{name}.png"] = out / f"{name}.png"
    return written


def _value(mean: float, std: float, n: int) -> str:
    if mean != mean:
        return "-"
    return f"{mean:.2f} ± {std:.2f}" if std == std else f"{mean:.2f} (n={n})"


def summary_text(summary, objective: str = "accuracy") -> str:
    """The summary frame as a plain-text table: name, step, comment, split, seeds done, mean ± std
    (one seed: the value and ``n=1``, no spread)."""
    lines = summary.assign(
        seeds=[f"{d}/{n}" for d, n in zip(summary["n_done"], summary["n_seeds"])],
        **{objective: [_value(m, s, n) for m, s, n in zip(summary["mean"], summary["std"], summary["n_done"])]},
    )
    columns = ["name", "step", "comment"] + (["split"] if "split" in lines else []) + ["seeds", objective]
    return lines[columns].to_string(index=False)


def metrics_text(gain, lost) -> str:
    """The transfer gain and the forgetting as plain text (empty when the recipe allows neither)."""
    parts = []
    if not gain.empty:
        lines = [f"gain over the from-scratch run ({gain['split'].iloc[0]}):"]
        for row in gain.itertuples():
            if row.scratch:
                lines.append(f"  {row.name} step {row.step} ({row.comment}): {row.mean:.2f} vs {row.scratch_mean:.2f} "
                             f"({row.scratch}): {row.gain:+.2f}")
            else:
                lines.append(f"  {row.name} step {row.step} ({row.comment}): no from-scratch run with the same data, "
                             "model and trainer in the recipe")
        parts.append("\n".join(lines))
    if not lost.empty:
        lines = ["forgetting (accuracy lost on an earlier step's test set):"]
        for row in lost.itertuples():
            spread = f" ± {row.forgetting_std:.2f}" if not math.isnan(row.forgetting_std) else f" (n={row.n})"
            lines.append(f"  {row.name} step {row.step} on {row.test_set} (learned at step {row.earlier_step}): "
                         f"{row.learned:.2f} -> {row.after:.2f}, forgetting {row.forgetting:.2f}{spread}")
        parts.append("\n".join(lines))
    return "\n".join(parts)


def run_report(args: argparse.Namespace) -> int:
    """The handler of ``nntransfer report``."""
    from nntransfer.analysis.results import load_results

    workdir = None if args.schema else (args.workdir or DEFAULT_WORKDIR)
    results = load_results(args.recipe, args.experiment, workdir=workdir, schema=args.schema)
    written = write_report(results, args.out, args.split, args.objective)
    logger.info("wrote %s to %s", ", ".join(path.name for path in written.values()), args.out)
    print(f"{results.recipe} ({results.where}): {args.objective} per split, mean ± std over seeds")
    print(summary_text(results.summary(None, args.objective), args.objective))
    if "transfer_gain" in written:
        from nntransfer.analysis.metrics import forgetting, transfer_gain

        metrics = metrics_text(transfer_gain(results, args.split, args.objective), forgetting(results, args.objective))
        if metrics:
            print(metrics)
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
    report.add_argument("--split", default="test",
                        help="split of the bar plot and the transfer gain (default test; the summary, the CSVs and "
                             "the other plots cover every split)")
    report.add_argument("--objective", default="accuracy", help="objective to summarise and plot (default accuracy)")
    report.add_argument("--quiet", action="store_true", help="warnings only")
    report.set_defaults(handler=run_report)
