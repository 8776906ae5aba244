"""The training log of a step as rows: what ``nntransfer.analysis`` reads from stored results and
``nntransfer.trainer.tensorboard`` writes as TensorBoard scalars.

Kept apart from the trainer package so that reading results needs NumPy, not torch.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Tuple

import numpy as np

Row = Tuple[str, str, str, int, float]


def tracker_rows(tracker: Mapping[str, Any]) -> List[Row]:
    """The training log of one step (an ``AdvancedTracker`` state, or its ``"log"``) as rows
    ``(mode, task, objective, epoch, value)``.

    Values that sit beside a ``"normalization"`` entry (sums over the examples of an epoch) are divided
    by it; epochs whose normalisation is 0 were not evaluated (e.g. validation every ``interval``
    epochs) and give no row. Entry 0 of every list is the tracker's initial state before the first
    epoch and is skipped. Top-level entries such as ``lr`` get ``mode = task = ""``.
    """
    log = tracker.get("log", tracker)
    rows: List[Row] = []

    def emit(path: Tuple[str, ...], values: np.ndarray, norm: Optional[np.ndarray]) -> None:
        mode = path[0] if len(path) > 1 else ""
        task = "/".join(path[1:-1])
        for epoch in range(1, len(values)):
            value = float(values[epoch])
            if norm is not None:
                if epoch >= len(norm) or norm[epoch] <= 0:
                    continue
                value /= float(norm[epoch])
            rows.append((mode, task, path[-1], epoch, value))

    def walk(node: Mapping[str, Any], path: Tuple[str, ...]) -> None:
        norm = node.get("normalization")
        norm = None if norm is None or isinstance(norm, Mapping) else np.asarray(norm, dtype=float)
        for key, child in node.items():
            if isinstance(child, Mapping):
                walk(child, path + (str(key),))
            elif key != "normalization" or norm is None:
                emit(path + (str(key),), np.atleast_1d(np.asarray(child, dtype=float)), norm)

    walk(log, ())
    return rows
