"""nntransfer: reproducible transfer-learning experiments on PyTorch, DataJoint and nnfabrik.

Importing the package opens no database connection; only ``nntransfer.tables`` does.
"""

import logging

from nntransfer.database import apply_nnfabrik_fixes

__version__ = "0.1.0"

apply_nnfabrik_fixes()
logging.getLogger(__name__).addHandler(logging.NullHandler())


def run(experiments, backend="local", workdir=None, schema=None, order="original", progress=True):
    """Train ``experiments`` (a recipe, ``{Description: TransferExperiment}``, a ``TransferExperiment``,
    an ``Experiment`` or a list of those) locally or in the tables; see
    :func:`nntransfer.recipes.runner.run_experiments`."""
    from nntransfer.recipes.runner import run_experiments

    return run_experiments(experiments, backend=backend, workdir=workdir, schema=schema, order=order, progress=progress)
