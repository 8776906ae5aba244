"""Iterating the batches of several tasks in one epoch.

A train cycler (the config's ``train_cycler``) decides the order of the tasks' batches. The cyclers
are the registry ``CYCLERS`` (defined once, here): ``schedule(lengths, **train_cycler_options)`` returns
the task keys of one epoch in order, given the number of batches of every task's loader.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

from nntransfer.registry import Registry

Schedule = Callable[..., List[str]]
#: ``train_cycler`` name -> ``schedule(lengths, **options)``: the task keys of one epoch
CYCLERS: Registry[Schedule] = Registry("train cycler")


@CYCLERS.register("round_robin")
def round_robin(lengths: Mapping[str, int]) -> List[str]:
    """One batch of every task in turn, until the longest loader is exhausted (shorter ones restart)."""
    return [key for _ in range(max(lengths.values())) for key in lengths]


@CYCLERS.register("main_task")
def main_task_first(lengths: Mapping[str, int], main_task: Optional[str] = None, ratio: float = 1.0) -> List[str]:
    """One pass over ``main_task``; after each of its batches, ``ratio`` batches of every other task
    (a fractional ratio accumulates, 0.5 = one every second batch)."""
    if main_task not in lengths:
        raise ValueError(f"train_cycler_options['main_task'] must be one of {sorted(lengths)}, got {main_task!r}")
    if ratio < 0:
        raise ValueError(f"train_cycler_options['ratio'] must not be negative, got {ratio!r}")
    others = [k for k in lengths if k != main_task]
    order: List[str] = []
    credit = 0.0
    for _ in range(lengths[main_task]):
        order.append(main_task)
        credit += ratio
        while credit >= 1 - 1e-9:
            order.extend(others)
            credit -= 1
    return order


def _next_cycled(iterators: Dict[str, Iterator], loaders: Mapping[str, Any], key: str) -> Any:
    """Next batch of ``key``, restarting (and so reshuffling) its loader when it is exhausted."""
    try:
        return next(iterators[key])
    except StopIteration:
        iterators[key] = iter(loaders[key])
        return next(iterators[key])


class TaskCycler:
    """Yields ``(task_key, batch)`` for one epoch, in the order of the cycler ``kind`` (see ``CYCLERS``;
    ``options`` are its ``train_cycler_options``)."""

    def __init__(self, loaders: Mapping[str, Any], kind: str = "round_robin", **options: Any):
        if not loaders:
            raise ValueError("no training loaders: dataloaders['train'] is empty")
        self.loaders = dict(loaders)
        empty = [key for key, loader in self.loaders.items() if len(loader) == 0]
        if empty:
            raise ValueError(f"the training loaders {empty} have no batches; give every task training examples")
        self.kind = kind
        schedule = CYCLERS.get(kind)
        try:
            # loader lengths are fixed, so one epoch's order is too
            self.order = schedule({key: len(loader) for key, loader in self.loaders.items()}, **options)
        except TypeError as err:
            raise ValueError(f"train_cycler_options {options} do not fit train cycler {kind!r}: {err}") from None

    def __len__(self) -> int:
        return len(self.order)

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        if len(self.loaders) == 1:  # the common case, without bookkeeping
            (key, loader), = self.loaders.items()
            for batch in loader:
                yield key, batch
            return
        iterators = {key: iter(loader) for key, loader in self.loaders.items()}
        for key in self.order:
            yield key, _next_cycled(iterators, self.loaders, key)


def sequential(loaders: Mapping[str, Any]) -> Iterator[Tuple[str, Any]]:
    """Every batch of every task, task after task (evaluation)."""
    for key, loader in loaders.items():
        for batch in loader:
            yield key, batch
