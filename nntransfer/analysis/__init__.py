"""Results of recipes as pandas frames and matplotlib plots.

In a notebook::

    from nntransfer.analysis import load_results, plot_all
    results = load_results("my_recipe", store="local:nntransfer_work")   # or "datajoint:my_schema"
    figures = plot_all(results, out="plots")

From the shell: ``nntransfer report my_recipe --store local:nntransfer_work --out plots``.
"""

from __future__ import annotations

import importlib
from typing import Any

# Names resolve on first use: the ``nntransfer`` command imports this package for its ``report``
# sub-command, and should not pay for pandas and matplotlib on every other command.
_EXPORTS = {
    "Results": "results",
    "load_results": "results",
    "collect_results": "results",
    "open_results_store": "results",
    "tracker_frame": "results",
    "final_frame": "results",
    "select": "results",
    "summarize": "results",
    "plot_learning_curves": "plots",
    "plot_transfer_steps": "plots",
    "plot_final_accuracy": "plots",
    "plot_robustness": "plots",
    "plot_robustness_test_sets": "plots",
    "plot_all": "plots",
    "write_report": "report",
    "transfer_gain": "metrics",
    "forgetting": "metrics",
    "continual_learning": "metrics",
    "accuracy_matrix": "metrics",
    "plot_accuracy_matrix": "plots",
}

# ``diff`` and ``lineage`` share their modules' names: bound at import, so that importing the module
# ``nntransfer.analysis.diff`` can never shadow the function (neither imports pandas or matplotlib).
from nntransfer.analysis.diff import Diff, diff  # noqa: E402, F401
from nntransfer.analysis.lineage import Lineage, lineage  # noqa: E402, F401

__all__ = sorted([*_EXPORTS, "Diff", "diff", "Lineage", "lineage"])


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)


def __dir__():
    return sorted(list(globals()) + __all__)
