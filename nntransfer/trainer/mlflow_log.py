"""An optional MLflow run per step, beside TensorBoard, so that a lab's MLflow UI shows nntransfer's steps
beside their other runs (runtime option ``mlflow_uri``: the tracking URI; not hashed).

Each step that trains is one MLflow run, named as its TensorBoard run (``run_info``: ``"KD seed 1 step 1
fine-tune 5-9 d710c56a"``), in the experiment that MLflow's ``MLFLOW_EXPERIMENT_NAME`` (or
``MLFLOW_EXPERIMENT_ID``) names, else ``nntransfer``. It holds the step's settings as params, every tracked
curve as metrics per epoch (the same tags as TensorBoard's: ``Training/<task>/loss``, ``lr``...), the final
evaluation as ``final/<split>/.../<task>/<objective>`` metrics at the last epoch, and tags
``nntransfer.step_id`` (the hash of the step's key, as ``status`` shows it), ``nntransfer.chain``,
``nntransfer.seed``, ``nntransfer.step``, ``nntransfer.comment``.

Resume: a step that resumes from a checkpoint continues the latest MLflow run with its step id, and logs
only the (metric, epoch) pairs that run lacks: no metric step is logged twice. A step that starts from
scratch (again) gets a new run. A failed step's run ends ``FAILED``, an interrupted or pruned one's
``KILLED`` (it continues when the step resumes), a finished one's ``FINISHED``.

MLflow is imported only when the option is set (its import takes a second): ``pip install
"nntransfer[mlflow]"``. Failing to open the run (a missing package, an unreachable server, a refused
store) stops the step before it trains; failing to log during training only warns, and what was not
logged is sent again after the next epoch.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from typing import Any, Dict, List, Mapping, Optional, Set

from nntransfer.trainer.run_info import STEP_ID_TAG, RunInfo
from nntransfer.trainer.tensorboard import final_values, scalar_tag
from nntransfer.training_log import tracker_rows

logger = logging.getLogger(__name__)

#: the experiment of nntransfer's runs when MLflow's environment names none
DEFAULT_EXPERIMENT = "nntransfer"
#: MLflow's limits (``mlflow.utils.validation``), the lowest of the versions in use
MAX_PARAMS_PER_BATCH, MAX_METRICS_PER_BATCH, MAX_PARAM_CHARS, MAX_KEY_CHARS = 100, 1000, 500, 250

_BAD_KEY = re.compile(r"[^/\w.\- ]")


def metric_key(tag: str) -> str:
    """A TensorBoard tag as an MLflow metric or param key (letters, digits, ``_ - . / `` and spaces)."""
    return _BAD_KEY.sub("_", tag)[:MAX_KEY_CHARS]


class MLflowLog:
    """The MLflow run of one step (see the module docstring); ``first_epoch``: the epoch the step resumes from
    (0: from scratch)."""

    def __init__(self, uri: str, info: RunInfo, first_epoch: int = 0) -> None:
        try:
            from mlflow.entities import RunTag
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ImportError(
                'mlflow_uri is set but MLflow is not installed; pip install "nntransfer[mlflow]" or leave mlflow_uri empty'
            ) from None
        self.uri, self.info = uri, info
        #: metric key -> the epochs the run has of it
        self.logged: Dict[str, Set[int]] = {}
        self._warned = False
        try:
            self.client = MlflowClient(tracking_uri=uri)
            self.experiment_id = self._experiment()
            run = self._latest_run() if first_epoch and info.step_id else None
            known: Mapping[str, str] = {}
            if run is None:
                run = self.client.create_run(self.experiment_id, run_name=info.name, tags=dict(info.tags))
                how = "started"
            else:
                self.client.update_run(run.info.run_id, status="RUNNING")
                self.client.log_batch(run.info.run_id, tags=[RunTag(k, v) for k, v in info.tags.items()])
                for key in run.data.metrics:
                    self.logged[key] = {metric.step for metric in self.client.get_metric_history(run.info.run_id, key)}
                known, how = run.data.params, "continued"
            self.run_id = run.info.run_id
            self._log_params(info.settings, known)
        except Exception as err:
            reason = " ".join(str(err).split()) or type(err).__name__
            raise RuntimeError(f"mlflow_uri={uri!r}: could not open the step's MLflow run: {reason}") from err
        logger.info("MLflow run %r of this step %s (run id %s, experiment %s, %s)", info.name, how, self.run_id,
                    self.experiment_id, uri)

    def _experiment(self) -> str:
        """The id of MLflow's experiment for the runs: its environment's, else ``nntransfer`` (created once)."""
        if os.environ.get("MLFLOW_EXPERIMENT_ID"):
            return os.environ["MLFLOW_EXPERIMENT_ID"]
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        found = self.client.get_experiment_by_name(name)
        if found is None:
            try:
                return self.client.create_experiment(name)
            except Exception:  # another worker created it meanwhile
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            raise ValueError(f"the MLflow experiment {name!r} is deleted; restore it (mlflow experiments restore) or "
                             "name another one with MLFLOW_EXPERIMENT_NAME")
        return found.experiment_id

    def _latest_run(self) -> Optional[Any]:
        """The step's latest run in the experiment (what a resumed step continues), or None."""
        found = self.client.search_runs([self.experiment_id], filter_string=f"tags.`{STEP_ID_TAG}` = '{self.info.step_id}'",
                                        order_by=["attributes.start_time DESC"], max_results=1)
        return found[0] if found else None

    def _log_params(self, settings: Mapping[str, Any], known: Mapping[str, str]) -> None:
        """The settings as params, but those the (continued) run has: MLflow refuses to change a param."""
        from mlflow.entities import Param

        params = [Param(metric_key(name), str(value)[:MAX_PARAM_CHARS]) for name, value in settings.items()
                  if metric_key(name) not in known]
        for start in range(0, len(params), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=params[start:start + MAX_PARAMS_PER_BATCH])

    def _send(self, values: List[tuple]) -> None:
        """Log ``(key, value, epoch)`` triples the run lacks; a failure warns (once) and is tried again next time."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        todo = [(key, value, step) for key, value, step in values
                if math.isfinite(value) and step not in self.logged.get(key, ())]
        try:
            for start in range(0, len(todo), MAX_METRICS_PER_BATCH):
                batch = todo[start:start + MAX_METRICS_PER_BATCH]
                self.client.log_batch(self.run_id, metrics=[Metric(key, value, now, step) for key, value, step in batch])
                for key, _, step in batch:
                    self.logged.setdefault(key, set()).add(step)
        except Exception as err:
            if not self._warned:
                logger.warning("MLflow: could not log to run %s at %s (%s); training goes on, it is tried again after "
                               "the next epoch", self.run_id, self.uri, " ".join(str(err).split()))
                self._warned = True

    def write_epochs(self, tracker: Mapping[str, Any], last_epoch: int) -> None:
        """Every tracked value of the epochs up to ``last_epoch`` that the run lacks, at its epoch as step."""
        self._send([(metric_key(scalar_tag(mode, task, objective)), value, epoch)
                    for mode, task, objective, epoch, value in tracker_rows(tracker) if epoch <= last_epoch])

    def write_final(self, final: Mapping[str, Any], epoch: int) -> None:
        """Every number of the final evaluation, as ``final/<split>/.../<task>/<objective>`` at ``epoch``."""
        self._send([(metric_key(tag), value, epoch) for tag, value in final_values(final)])

    def close(self, status: str = "FINISHED") -> None:
        """End the run: ``FINISHED``, ``FAILED`` or ``KILLED``."""
        self.client.set_terminated(self.run_id, status)
