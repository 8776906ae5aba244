"""Who a training run is, for the experiment trackers (TensorBoard, MLflow): a readable name, the step id
and the step's settings.

The pipeline knows them (``nntransfer.pipeline.step.run_step``: recipe name, seed, step index, comment, key,
configs); the trainer writes the logs. A context variable carries them from one to the other, as
``observers`` does for a search's pruner, so that a trainer function keeps nnfabrik's signature. A trainer
run outside the pipeline (or a trainer built inside another one) gets a plain name from its seed and key.

Kept free of torch: the step layer imports it before anything trains.
"""

from __future__ import annotations

import contextlib
import contextvars
import numbers
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, Mapping, Optional

#: characters of the step id in a run's name (as ``status`` shows step ids)
SHORT_ID = 8
#: longest readable part of a run's name (a folder name must stay well under 255 bytes)
TITLE_CHARS = 120
#: longest string (or written-out list) kept as a setting; longer ones are left out
SETTING_CHARS = 100
#: the tag (MLflow) that identifies a step's runs: the hash of the step's key
STEP_ID_TAG = "nntransfer.step_id"
#: what joins the comments of a chain's steps (``nntransfer.configs.transfer_experiment``)
COMMENT_SEPARATOR = " -> "

_UNSAFE = re.compile(r"[^A-Za-z0-9 ._+=,@()\[\]-]+")


def safe_name(text: str, limit: int = TITLE_CHARS) -> str:
    """``text`` as a folder name on any filesystem: ``->`` becomes ``to``, other characters than letters,
    digits, spaces and ``._+=,@()[]-`` become ``_``, runs of spaces one, at most ``limit`` characters."""
    text = text.replace("->", " to ")
    text = _UNSAFE.sub("_", text)
    text = re.sub(r"\s+", " ", text).strip(" .")
    return text[:limit].rstrip(" .") or "run"


def title(name: str = "", seed: Optional[int] = None, step: Optional[int] = None, comment: str = "") -> str:
    """``"KD seed 1 step 1 fine-tune 5-9"``: the recipe's name, the seed, the step index and the step's own
    comment (the last part of a chain's ``"c0 -> c1"``); parts that are unknown are left out."""
    own = comment.split(COMMENT_SEPARATOR)[-1].strip() if comment else ""
    parts = [name.strip(), f"seed {seed}" if seed is not None else "", f"step {step}" if step is not None else "", own]
    return " ".join(part for part in parts if part)


def _scalar(value: Any) -> Any:
    """A setting as a tracker can show it: bool, int, float, None or a short string; else ``...`` (left out)."""
    if value is None or isinstance(value, (bool, str)):
        return value if not isinstance(value, str) or len(value) <= SETTING_CHARS else ...
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)) and all(_scalar(item) is not ... for item in value):
        items = [_scalar(item) for item in value]
        text = str(tuple(items) if isinstance(value, tuple) else items)
        return text if len(text) <= SETTING_CHARS else ...
    return ...


def flat_settings(configs: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """``{"dataset/batch_size": 128, "model/options/hidden_sizes": "[16]", ...}``: nested dicts joined by
    ``/``; lists of scalars written out; long strings and anything else left out (trackers take scalars)."""
    flat: Dict[str, Any] = {}
    for key, value in configs.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_settings(value, path + "/"))
            continue
        value = _scalar(value)
        if value is not ...:
            flat[path] = value
    return flat


@dataclass(frozen=True)
class RunInfo:
    """A training run for the trackers. ``title``: what people call it; ``step_id``: the hash of the step's
    key (what ``status``, ``diff`` and ``forget`` take); ``settings``: flat scalars (``flat_settings``);
    ``tags``: more about it (``nntransfer.chain``, ``nntransfer.seed``...)."""

    title: str
    step_id: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The run's name in TensorBoard (its folder) and MLflow: the title, filesystem-safe, and the short
        step id, which keeps two steps with the same title apart."""
        short = self.step_id[:SHORT_ID]
        return f"{safe_name(self.title)} {short}".strip() if self.title else (short or "run")


def for_step(name: str, seed: Optional[int], step: Optional[int], comment: str, step_id: str,
             configs: Mapping[str, Mapping[str, Any]]) -> RunInfo:
    """The run of a pipeline step: its title, id, its configs' fields and seed as settings, and tags."""
    settings: Dict[str, Any] = {"seed": seed} if seed is not None else {}
    settings.update(flat_settings(configs))
    tags = {STEP_ID_TAG: step_id, "nntransfer.chain": name, "nntransfer.comment": comment,
            "nntransfer.seed": "" if seed is None else str(seed), "nntransfer.step": "" if step is None else str(step)}
    return RunInfo(title(name, seed, step, comment), step_id, settings, {k: v for k, v in tags.items() if v})


_current: contextvars.ContextVar[Optional[RunInfo]] = contextvars.ContextVar("nntransfer_run_info", default=None)


@contextlib.contextmanager
def describing(info: RunInfo) -> Iterator[None]:
    """Within the block, the trainer of the step ``info.step_id`` names its logs after ``info``."""
    token = _current.set(info)
    try:
        yield
    finally:
        _current.reset(token)


def current(step_id: str = "") -> Optional[RunInfo]:
    """The run the pipeline is training, if it is the step ``step_id`` (any step when none is given)."""
    info = _current.get()
    if info is None or (step_id and info.step_id and info.step_id != step_id):
        return None
    return info
