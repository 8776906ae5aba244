"""``nntransfer report``: a recipe's results as CSVs and PNGs in one folder.

    nntransfer report RECIPE [--experiment NAME] [--chain NAME] [--seed N] [--store ADDRESS | --workdir DIR | --schema NAME] --out DIR
                      [--split test] [--objective accuracy]

writes ``status.csv``, ``steps.csv``, ``curves.csv``, ``final.csv``, ``summary.csv`` (every split; see
``nntransfer.analysis.results``), the transfer metrics ``transfer_gain.csv``, ``forgetting.csv``,
``continual_learning.csv`` and ``accuracy_matrix.csv`` (see ``nntransfer.analysis.metrics``) and the PNGs
of ``nntransfer.analysis.plots.plot_all`` to ``--out``, and prints the summary (a step several chains
share once, with the test set of each row) and the metrics. ``index.html`` in ``--out`` shows all of it on
one page: every PNG, the printed text, and every table (the first :data:`HTML_ROWS` rows of each CSV, with
a link to it); every string that comes from the recipe is HTML-escaped.
"""

from __future__ import annotations

import argparse
import html
import io
import logging
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote

from nntransfer.pipeline.backends import add_store_arguments, store_address
from nntransfer.recipes.selection import add_selection_arguments
from nntransfer.safe_files import read_text, write_atomically

logger = logging.getLogger(__name__)

#: the most rows of one table that ``index.html`` shows (its CSV, linked beside it, holds them all)
HTML_ROWS = 200


def report_frames(results, split: str = "test", objective: str = "accuracy") -> Dict[str, Any]:
    """The frames of a report, by CSV name: those of ``results``
    (:class:`~nntransfer.analysis.results.Results`), the summary over every split and, when a step has
    ``objective`` results on a test set, the transfer metrics (the gain on ``split``)."""
    from nntransfer.analysis.metrics import continual_learning, forgetting, transfer_gain

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
        frames["continual_learning"] = continual_learning(results, objective)
    else:
        logger.warning("no step has %s results on a test set: no transfer metrics", objective)
    return frames


def write_report(results, out: Union[str, Path], split: str = "test", objective: str = "accuracy",
                 frames: Optional[Dict[str, Any]] = None) -> Dict[str, Path]:
    """Write the frames of ``results`` (:class:`~nntransfer.analysis.results.Results`), the summary over
    every split, the transfer metrics (``objective``; the gain on ``split``) as CSVs and every plot as a
    PNG (the bar plot on ``split``) into ``out``; returns name -> path of everything written. ``frames``:
    :func:`report_frames` of the same arguments, if already computed."""
    from nntransfer.analysis.metrics import accuracy_matrix
    from nntransfer.analysis.plots import plot_all  # matplotlib only when a report is written

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if frames is None:
        frames = report_frames(results, split, objective)
    written: Dict[str, Path] = {}
    for name, frame in frames.items():
        path = out / f"{name}.csv"
        write_atomically(path, frame.to_csv(index=False).encode())  # a link planted there is replaced, not followed
        written[name] = path
    if "transfer_gain" in frames:
        written["accuracy_matrix"] = out / "accuracy_matrix.csv"
        write_atomically(written["accuracy_matrix"], accuracy_matrix(results, objective).to_csv().encode())
    for name in plot_all(results, out=out, split=split, objective=objective, close=True):
        written[f"{name}.png"] = out / f"{name}.png"
    written["index.html"] = write_index(results, out, frames, written, objective)
    return written


def write_index(results, out: Union[str, Path], frames: Dict[str, Any], written: Dict[str, Path],
                objective: str = "accuracy", searches: Sequence[str] = ()) -> Path:
    """Write ``index.html`` into ``out``: every PNG of ``written``, the text ``report`` prints and every table
    (``frames``, the accuracy matrix, the trials of each search in ``searches``) on one page, so that a report
    is read in a browser rather than file by file; returns its path."""
    out = Path(out)
    images = [path.name for path in written.values() if path.suffix == ".png"]
    page = index_html(f"nntransfer report: {results.recipe}", f"Results read from {results.where}.",
                      report_texts(results, frames, objective, searches), images,
                      report_tables(results, frames, written, objective, searches))
    path = out / "index.html"
    write_atomically(path, page.encode())  # a link planted there is replaced, not followed
    logger.info("wrote %s", path)
    return path


def report_texts(results, frames: Dict[str, Any], objective: str = "accuracy",
                 searches: Sequence[str] = ()) -> List[Tuple[str, str]]:
    """(heading, text) of each block ``report`` prints: the summary, the transfer metrics, the steps whose
    code changed, incomplete chains and the searches; a block that cannot be made is left out with a warning
    (the page still shows the rest)."""
    texts = []
    try:
        texts.append((f"{objective} per split, mean ± std over seeds", summary_text(shared_once(results, objective), objective)))
    except ValueError as err:
        logger.warning("index.html: no summary (%s)", err)
    if "transfer_gain" in frames:
        texts.append(("transfer metrics", metrics_text(frames["transfer_gain"], frames["forgetting"], frames["continual_learning"])))
    texts.append(("code", code_text(results.status)))
    if not results.incomplete.empty:
        chains = results.incomplete.groupby(["name", "seed"]).ngroups
        texts.append(("incomplete chains", f"{chains} chain(s) incomplete; see status.csv"))
    texts.append(("searches", "\n".join(searches)))
    return [(heading, text) for heading, text in texts if text.strip()]


def report_tables(results, frames: Dict[str, Any], written: Dict[str, Path], objective: str = "accuracy",
                  searches: Sequence[str] = ()) -> List[Tuple[str, Any, str]]:
    """(name, frame, CSV file name) of every table the report writes: the frames, the accuracy matrix (its
    steps as columns, as in its CSV) and the trials of each search, read back from the CSVs its lines name."""
    tables = [(name, frame, f"{name}.csv") for name, frame in frames.items()]
    if "accuracy_matrix" in written:
        from nntransfer.analysis.metrics import accuracy_matrix

        tables.append(("accuracy_matrix", accuracy_matrix(results, objective).reset_index(), "accuracy_matrix.csv"))
    for line in searches:
        if line.startswith("  trials: "):
            tables += _search_table(Path(line[len("  trials: "):]))
    return tables


def _search_table(path: Path) -> List[Tuple[str, Any, str]]:
    """The trials CSV of one search as a table, read as data (a planted FIFO or link is refused, not read)."""
    import pandas

    try:
        frame = pandas.read_csv(io.StringIO(read_text(path)))
    except (OSError, ValueError) as err:
        logger.warning("index.html: %s left out (%s)", path, err)
        return []
    return [(path.stem, frame, path.name)]


def index_html(title: str, lead: str, texts: Sequence[Tuple[str, str]], images: Sequence[str],
               tables: Sequence[Tuple[str, Any, str]]) -> str:
    """One self-contained page: ``texts`` as <pre> blocks, ``images`` (file names in the page's folder) as
    <img> with relative links, ``tables`` (name, frame, CSV file name) as HTML tables of their first
    :data:`HTML_ROWS` rows. Every string is escaped here or by pandas: names and comments are users'."""
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">', f"<title>{_text(title)}</title>",
             f"<style>{PAGE_STYLE}</style>", "</head>", "<body>", f"<h1>{_text(title)}</h1>", f"<p>{_text(lead)}</p>",
             '<nav><a href="#text">printed summary</a> · <a href="#plots">plots</a> · <a href="#tables">tables</a></nav>',
             '<h2 id="text">Printed summary</h2>']
    parts += [f'<section class="text"><h3>{_text(heading)}</h3><pre>{_text(text)}</pre></section>' for heading, text in texts]
    parts.append('<h2 id="plots">Plots</h2>')
    parts += [f'<figure><img src="{_link(name)}" alt="{_text(name)}"><figcaption>{_text(name)}</figcaption></figure>'
              for name in images]
    parts.append('<h2 id="tables">Tables</h2>')
    parts += [_table_section(name, frame, csv) for name, frame, csv in tables]
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


PAGE_STYLE = ("body{font-family:sans-serif;margin:1.5em;max-width:1500px} img{max-width:100%;height:auto}"
              " figure{margin:1em 0} pre{background:#f6f6f6;padding:.6em;overflow-x:auto}"
              " table{border-collapse:collapse;font-size:.85em} td,th{border:1px solid #ccc;padding:2px 6px}"
              " .table{overflow:auto;max-height:40em}")


def _table_section(name: str, frame, csv: str) -> str:
    """One table: its name, a link to its CSV, how many rows it shows, and the rows."""
    shown = frame.head(HTML_ROWS)
    count = f"{len(frame)} row(s)" if len(frame) <= HTML_ROWS else f"the first {HTML_ROWS} of {len(frame)} rows"
    rows = shown.to_html(index=False, escape=True, na_rep="", border=0, float_format=lambda value: f"{value:.6g}")
    return (f'<section class="table-section" data-table="{_text(name)}"><h3>{_text(name)}</h3>'
            f'<p><a href="{_link(csv)}">{_text(csv)}</a>: {count}</p><div class="table">{rows}</div></section>')


def _text(value: Any) -> str:
    """``value`` as HTML text or attribute value: <, >, & and quotes escaped."""
    return html.escape(str(value), quote=True)


def _link(name: str) -> str:
    """A file name of the page's folder as a relative URL in an attribute (spaces, #, ? and quotes encoded)."""
    return _text(quote(name))


def _value(mean: float, std: float, n: int) -> str:
    if mean != mean:
        return "-"
    return f"{mean:.2f} ± {std:.2f}" if std == std else f"{mean:.2f} (n={n})"


def shared_once(results, objective: str = "accuracy"):
    """The summary over every split (:func:`~nntransfer.analysis.results.summarize`) with a step that several
    chains share as one row, named after all of them (``steps.shared_by``), over the seeds of every chain
    that shares it (each seed once)."""
    from nntransfer.analysis.results import summarize

    who = results.steps[["name", "seed", "step", "config_id", "shared_by"]]
    final = results.final.merge(who[["name", "seed", "step", "shared_by"]], on=["name", "seed", "step"])
    final = final.drop_duplicates(["step_id", "split", "variant", "group", "level", "task", "objective"])
    status = results.status.merge(who, on=["name", "seed", "step"]).drop_duplicates("step_id")
    return summarize(final.assign(name=final["shared_by"]), status.assign(name=status["shared_by"]), None, objective)


def summary_text(summary, objective: str = "accuracy") -> str:
    """The summary frame as a plain-text table: name, step, comment, split, the test set it is, seeds
    done, mean ± std (one seed: the value and ``n=1``, no spread)."""
    lines = summary.assign(
        seeds=[f"{d}/{n}" for d, n in zip(summary["n_done"], summary["n_seeds"])],
        **{objective: [_value(m, s, n) for m, s, n in zip(summary["mean"], summary["std"], summary["n_done"])]},
    )
    if "test_set" in lines:
        lines = lines.rename(columns={"test_set": "test set"})
    columns = ["name", "step", "comment"] + [c for c in ("split", "test set") if c in lines] + ["seeds", objective]
    return lines[columns].to_string(index=False)


def metrics_text(gain, lost, continual=None) -> str:
    """The transfer gain, the forgetting and the continual-learning metrics as plain text (empty when the
    recipe allows none)."""
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
    if continual is not None and not continual.empty:
        lines = ["continual learning (ACC: final accuracy over the tasks; BWT, FWT: Lopez-Paz & Ranzato 2017, "
                 "FWT against each task's from-scratch run):"]
        for row in continual.itertuples():
            fwt = (f"FWT {_signed(row.fwt, row.fwt_std, row.n)}" if row.scratch
                   else "FWT - (a task has no from-scratch run in the recipe)")
            lines.append(f"  {row.name} ({row.tasks}): ACC {row.acc:.2f}, BWT {_signed(row.bwt, row.bwt_std, row.n)}, {fwt}")
        parts.append("\n".join(lines))
    return "\n".join(parts)


def _signed(mean: float, std: float, n: int) -> str:
    return f"{mean:+.2f} ± {std:.2f}" if std == std else f"{mean:+.2f} (n={n})"


def code_text(status) -> str:
    """Lines flagging the steps whose results come from code that has changed since (the ``code`` column of
    the status frame; ``nntransfer.pipeline.drift``), and how many steps have no code fingerprint."""
    from nntransfer.pipeline.drift import UNRECORDED_NOTE

    noted = status[status["code"] != ""]
    unrecorded = noted[noted["code"] == UNRECORDED_NOTE]
    lines = [f"code: {row.name} (seed {row.seed}) step {row.step}: {row.code}" for row in noted.itertuples() if row.code != UNRECORDED_NOTE]
    if lines:
        lines.insert(0, f"{len(lines)} step(s) were trained with code that has changed since (their results may not be "
                        "what the code loaded now gives; 'nntransfer run --rerun-changed' trains them again):")
    if len(unrecorded):
        lines.append(f"{len(unrecorded)} step(s) were stored before code fingerprints were recorded: their code is not checked")
    return "".join(line + "\n" for line in lines)


def run_report(args: argparse.Namespace) -> int:
    """The handler of ``nntransfer report``."""
    from nntransfer.analysis.results import load_results
    from nntransfer.analysis.searches import search_report

    address = store_address(args.store, args.workdir, args.schema)
    try:
        results = load_results(args.recipe, args.experiment, store=address, chains=args.chain, seeds=args.seed)
    except ValueError:  # none of the recipe's own steps is stored: its searches may still be
        from nntransfer.recipes.loading import load_recipe

        searches = search_report(address, load_recipe(args.recipe, args.experiment).name, args.out)
        if not searches:
            raise
        logger.warning("none of the recipe's own steps is stored: only its searches are reported")
        print("\n".join(searches))
        return 0
    frames = report_frames(results, args.split, args.objective)  # each metric computed once: written and printed
    written = write_report(results, args.out, args.split, args.objective, frames)
    logger.info("wrote %s to %s", ", ".join(path.name for path in written.values()), args.out)
    print(f"{results.recipe} ({results.where}): {args.objective} per split, mean ± std over seeds")
    print(summary_text(shared_once(results, args.objective), args.objective))
    if "transfer_gain" in frames:
        metrics = metrics_text(frames["transfer_gain"], frames["forgetting"], frames["continual_learning"])
        if metrics:
            print(metrics)
    print(code_text(results.status), end="")
    searches = search_report(address, results.recipe, args.out)
    if searches:
        print("\n".join(searches))
        write_index(results, args.out, frames, written, args.objective, searches)  # the searches' tables too
    if not results.incomplete.empty:
        chains = results.incomplete.groupby(["name", "seed"]).ngroups
        print(f"{chains} chain(s) incomplete; see {Path(args.out) / 'status.csv'}")
    return 0


def add_report_command(subparsers) -> None:
    """Add ``report`` to the ``nntransfer`` command's sub-commands."""
    report = subparsers.add_parser("report", help="write a recipe's results as CSVs and PNGs, print a summary")
    report.add_argument("recipe", help="recipe folder, .py file or dotted module name")
    report.add_argument("--experiment", help="only this module of the recipe folder")
    add_selection_arguments(report)
    add_store_arguments(report)
    report.add_argument("--out", required=True, help="folder for the CSVs and PNGs")
    report.add_argument("--split", default="test",
                        help="split of the bar plot and the transfer gain (default test; the summary, the CSVs and "
                             "the other plots cover every split)")
    report.add_argument("--objective", default="accuracy", help="objective to summarise and plot (default accuracy)")
    report.add_argument("--quiet", action="store_true", help="warnings only")
    report.set_defaults(handler=run_report)
