"""Searches as data: the trials of a study (``nntransfer search``) as a DataFrame, and the lines ``report`` and
``status`` print of each study of a recipe. A study lives beside the steps in the store (``Store.sql_url``:
Optuna's tables in the work folder's SQLite file, or in the schema); each trial records the name of its
chain and its last step's id, which ``diff``, ``lineage`` and ``forget`` take."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, List, Optional, Union

from nntransfer.pipeline.addresses import open_store
from nntransfer.pipeline.backends import store_address
from nntransfer.pipeline.store import SHORT_ID, Store
from nntransfer.safe_files import write_atomically

__all__ = ["ABANDONED_ATTR", "CHAIN_ATTR", "INTERRUPTED_ATTR", "STEP_ATTR", "trials_frame", "search_report", "short_value"]

#: what each trial records in the study beside its settings
CHAIN_ATTR, STEP_ATTR = "nntransfer_chain", "nntransfer_step_id"
#: a trial stopped from outside (not counted towards the study's size; its setting is tried again)
INTERRUPTED_ATTR = "nntransfer_interrupted"
#: the study's list of trials abandoned by a killed process (failed by Optuna's heartbeat; tried again)
ABANDONED_ATTR = "nntransfer_abandoned"


def short_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else repr(value)


def _url(target: Store) -> Optional[str]:
    """The store's database of studies, or None where it has none (yet): reading never creates Optuna's
    tables (which opening a storage does)."""
    return target.sql_url() if target.holds_table("studies") else None


def trials_frame(study: str, store: Optional[str] = None):
    """The trials of the study ``study`` in the store at the address ``store`` as a DataFrame: number,
    state (COMPLETE, PRUNED, FAIL, RUNNING), value (a pruned trial's: its last reported epoch's), the epoch
    it was pruned at (``pruned_at``), one column per searched setting (``params_STEP/ROLE/FIELD``), the
    trial's chain name and its last step's id (``step_id``: what ``diff``, ``lineage`` and ``forget`` take;
    a pruned trial's step is not stored, only its checkpoint)."""
    import optuna
    import pandas

    target = open_store(store_address(store), read_only=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = _url(target)
    try:
        if url is None:
            raise KeyError(study)
        loaded = optuna.load_study(study_name=study, storage=url)
    except KeyError:
        raise ValueError(f"no study {study!r} in {target.where}") from None
    frame = loaded.trials_dataframe(attrs=("number", "state", "value", "params", "user_attrs"))
    pruned = {t.number: max(t.intermediate_values) for t in loaded.trials if t.state == optuna.trial.TrialState.PRUNED and t.intermediate_values}
    frame.insert(3, "pruned_at", pandas.array([pruned.get(number) for number in frame["number"]], dtype="Int64"))
    return frame.rename(columns={f"user_attrs_{CHAIN_ATTR}": "chain", f"user_attrs_{STEP_ATTR}": "step_id"})


def search_report(store: Union[str, Store], recipe: str, out: Optional[Union[str, os.PathLike]] = None, brief: bool = False) -> List[str]:
    """Lines for ``report``: per study of ``recipe`` in the store at the address ``store``, the best trial
    with its settings, the best objective over the trials, and each setting's importance (Optuna's fANOVA,
    from 3 finished trials on); ``out``: a folder to write each study's trials to (``search <study>.csv``);
    ``brief`` (``status``): the count and the best trial only. None for a store without searches."""
    target = open_store(store_address(store), read_only=True)
    url = _url(target)
    if url is None:
        return []
    import optuna  # a second: only where there are studies
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    lines: List[str] = []
    for summary in optuna.get_all_study_summaries(storage=url, include_best_trial=False):
        if summary.user_attrs.get("recipe") != recipe:
            continue
        study = optuna.load_study(study_name=summary.study_name, storage=url)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
        space = summary.user_attrs.get("space", {})
        pruning = f", {pruned} pruned" if pruned else ""
        lines.append(f"search {summary.study_name!r} ({space.get('sampler', '?')} sampler, {space.get('direction', '?')} "
                     f"{space.get('objective', '?')}): {len(done)} of {len(study.trials)} trial(s) finished{pruning}")  # fmt: skip
        if not done:
            continue
        best = study.best_trial
        settings = ", ".join(f"{k}={short_value(v)}" for k, v in best.params.items())
        lines.append(f"  best: trial {best.number} ({best.user_attrs.get(STEP_ATTR, '')[:SHORT_ID]}), {settings}: {best.value:.4f}")
        if brief:
            continue
        better = max if space.get("direction", "maximize") == "maximize" else min
        running, curve = None, []
        for trial in done:
            running = trial.value if running is None else better(running, trial.value)
            curve.append(f"{running:.4g}")
        lines.append(f"  best objective after each finished trial: {' '.join(curve)}")
        if len(done) >= 3 and len(best.params) >= 2:
            try:
                importance = optuna.importance.get_param_importances(study)
            except (RuntimeError, ValueError, ImportError) as err:  # e.g. a setting that never varied
                lines.append(f"  importance: not computed ({err})")
            else:
                lines.append("  importance: " + ", ".join(f"{k} {v:.2f}" for k, v in importance.items()))
        if out is not None:
            folder = Path(out)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"search {summary.study_name.replace('/', '_').replace(':', '_')}.csv"
            write_atomically(path, trials_frame(summary.study_name, store).to_csv(index=False).encode())  # never through a planted link
            lines.append(f"  trials: {path}")
    return lines
