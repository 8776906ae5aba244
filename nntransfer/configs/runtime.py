"""Runtime options: settings that change how a step runs, never what it computes.

They are set like fields (``ImageDatasetConfig(data_dir="/scratch/data")``) but are not part of
``to_dict()`` or the hash: moving the data folder or switching off progress bars names the same
experiment and retrains nothing. Each config role has its own (defined once, here):

    dataset   num_workers, pin_memory, data_dir
    trainer   device, force_cpu, checkpoint_dir, chkpt_options (retention), keep_checkpoints,
              show_progress, show_epoch_progress, tensorboard_dir (TensorBoard event files),
              mlflow_uri (an MLflow tracking URI: one MLflow run per step),
              fast_dev_run (batches per loop of ``run --fast-dev-run``, whose results are never stored)

A step's effective options are, lowest first: its config's values, the environment
(``NNTRANSFER_DEVICE``, ``NNTRANSFER_DATA_DIR``, ``NNTRANSFER_NUM_WORKERS``, ``NNTRANSFER_PIN_MEMORY``,
``NNTRANSFER_PROGRESS``, ``NNTRANSFER_TENSORBOARD_DIR``, ``NNTRANSFER_MLFLOW_URI``), then what the caller passes (the CLI's ``--device``, ``--data-dir``,
``--num-workers``, ``--quiet``).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

RUNTIME_FIELDS: Dict[str, Tuple[str, ...]] = {
    "dataset": ("num_workers", "pin_memory", "data_dir"),
    "model": (),
    "trainer": (
        "device",
        "force_cpu",
        "checkpoint_dir",
        "chkpt_options",
        "keep_checkpoints",
        "show_progress",
        "show_epoch_progress",
        "tensorboard_dir",
        "mlflow_uri",
        "fast_dev_run",
    ),
}


def _flag(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected a yes/no value (1/0, true/false), got {text!r}")


# environment variable -> (role, option names it sets, parser)
ENVIRONMENT: Dict[str, Tuple[str, Tuple[str, ...], Callable[[str], Any]]] = {
    "NNTRANSFER_DEVICE": ("trainer", ("device",), str),
    "NNTRANSFER_DATA_DIR": ("dataset", ("data_dir",), str),
    "NNTRANSFER_NUM_WORKERS": ("dataset", ("num_workers",), int),
    "NNTRANSFER_PIN_MEMORY": ("dataset", ("pin_memory",), _flag),
    "NNTRANSFER_PROGRESS": ("trainer", ("show_progress", "show_epoch_progress"), _flag),
    "NNTRANSFER_TENSORBOARD_DIR": ("trainer", ("tensorboard_dir",), str),
    "NNTRANSFER_MLFLOW_URI": ("trainer", ("mlflow_uri",), str),
}


def from_environment(environ: Optional[Mapping[str, str]] = None) -> Dict[str, Dict[str, Any]]:
    """``{role: {option: value}}`` from the ``NNTRANSFER_*`` variables that are set."""
    environ = os.environ if environ is None else environ
    found: Dict[str, Dict[str, Any]] = {role: {} for role in RUNTIME_FIELDS}
    for variable, (role, names, parse) in ENVIRONMENT.items():
        if environ.get(variable, "") != "":
            try:
                value = parse(environ[variable])
            except ValueError as err:
                raise ValueError(f"environment variable {variable}={environ[variable]!r}: {err}") from None
            for name in names:
                found[role][name] = value
    return found


def merge(*layers: Optional[Mapping[str, Mapping[str, Any]]]) -> Dict[str, Dict[str, Any]]:
    """``{role: {option: value}}`` layers merged, later ones winning; unknown options are an error."""
    merged: Dict[str, Dict[str, Any]] = {role: {} for role in RUNTIME_FIELDS}
    for layer in layers:
        for role, options in (layer or {}).items():
            unknown = set(options) - set(RUNTIME_FIELDS.get(role, ()))
            if unknown:
                raise ValueError(f"unknown {role} runtime option(s) {sorted(unknown)}; known: {list(RUNTIME_FIELDS.get(role, ()))}")
            merged[role].update(options)
    check_tensorboard(merged["trainer"].get("tensorboard_dir"))
    check_mlflow(merged["trainer"].get("mlflow_uri"))
    return merged


def check_tensorboard(folder: Optional[str]) -> None:
    """ValueError (one line, how to fix) when ``tensorboard_dir`` is set but TensorBoard is missing."""
    if folder and importlib.util.find_spec("tensorboard") is None:
        raise ValueError(
            f"tensorboard_dir={folder!r} needs TensorBoard, which is not installed; "
            'pip install "nntransfer[tensorboard]" or leave tensorboard_dir unset'
        )


def check_mlflow(uri: Optional[str]) -> None:
    """ValueError (one line, how to fix) when ``mlflow_uri`` is set but MLflow is missing or the URI is no
    string; checked here, before anything trains, without importing MLflow (its import takes a second)."""
    if not uri:
        return
    if not isinstance(uri, str):
        raise ValueError(f"mlflow_uri must be an MLflow tracking URI (a string such as 'sqlite:///mlflow.db' or "
                         f"'http://host:5000'), got {uri!r}")
    if importlib.util.find_spec("mlflow") is None:
        raise ValueError(
            f"mlflow_uri={uri!r} needs MLflow, which is not installed; "
            'pip install "nntransfer[mlflow]" or leave mlflow_uri unset'
        )
