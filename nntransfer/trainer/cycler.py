"""Iterating the batches of several tasks in one epoch."""

from __future__ import annotations

from typing import Any, Dict, Iterator, Mapping, Optional, Tuple


def _next_cycled(iterators: Dict[str, Iterator], loaders: Mapping[str, Any], key: str) -> Any:
    """Next batch of ``key``, restarting (and so reshuffling) its loader when it is exhausted."""
    try:
        return next(iterators[key])
    except StopIteration:
        iterators[key] = iter(loaders[key])
        return next(iterators[key])


class TaskCycler:
    """Yields ``(task_key, batch)`` for one epoch.

    ``"round_robin"``: one batch of every task in turn, until the longest loader is exhausted (shorter
    loaders restart). ``"main_task"``: one pass over ``main_task``; after each of its batches, ``ratio``
    batches of every other task (a fractional ratio accumulates, 0.5 = one every second batch).
    """

    def __init__(self, loaders: Mapping[str, Any], kind: str = "round_robin", main_task: Optional[str] = None, ratio: float = 1.0):
        if not loaders:
            raise ValueError("no training loaders: dataloaders['train'] is empty")
        self.loaders = dict(loaders)
        empty = [key for key, loader in self.loaders.items() if len(loader) == 0]
        if empty:
            raise ValueError(f"the training loaders {empty} have no batches; give every task training examples")
        self.kind = kind
        if kind == "main_task":
            if main_task not in self.loaders:
                raise ValueError(f"train_cycler_options['main_task'] must be one of {sorted(self.loaders)}, got {main_task!r}")
            if ratio < 0:
                raise ValueError(f"train_cycler_options['ratio'] must not be negative, got {ratio!r}")
        elif kind != "round_robin":
            raise ValueError(f"unknown cycler {kind!r}; use 'round_robin' or 'main_task'")
        self.main_task, self.ratio = main_task, ratio

    def _schedule(self) -> Iterator[str]:
        """The task keys of one epoch, in order."""
        if self.kind == "round_robin":
            longest = max(len(loader) for loader in self.loaders.values())
            for _ in range(longest):
                yield from self.loaders
            return
        others = [k for k in self.loaders if k != self.main_task]
        credit = 0.0
        for _ in range(len(self.loaders[self.main_task])):
            yield self.main_task
            credit += self.ratio
            while credit >= 1 - 1e-9:
                yield from others
                credit -= 1

    def __len__(self) -> int:
        return sum(1 for _ in self._schedule())

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        if len(self.loaders) == 1:  # the common case, without bookkeeping
            (key, loader), = self.loaders.items()
            for batch in loader:
                yield key, batch
            return
        iterators = {key: iter(loader) for key, loader in self.loaders.items()}
        for key in self._schedule():
            yield key, _next_cycled(iterators, self.loaders, key)


def sequential(loaders: Mapping[str, Any]) -> Iterator[Tuple[str, Any]]:
    """Every batch of every task, task after task (evaluation)."""
    for key, loader in loaders.items():
        for batch in loader:
            yield key, batch
