"""nntransfer: reproducible transfer-learning experiments on PyTorch, DataJoint and nnfabrik.

Importing the package loads nothing heavy: configs are plain data, torch comes with the pipeline and
DataJoint only with the tables (``nntransfer.tables``), which connect when activated.
"""

import logging

__version__ = "0.3.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())


def run(experiments, backend="local", workdir=None, schema=None, order="original", progress=True, runtime=None):
    """Train ``experiments`` (a recipe, ``{Description: TransferExperiment}``, a ``TransferExperiment``,
    an ``Experiment`` or a list of those) locally or in the tables; returns every step's status. See
    :func:`nntransfer.pipeline.runner.run_experiments`."""
    # Loaded on call: importing nntransfer (e.g. for its configs) must not load torch.
    from nntransfer.pipeline.runner import run_experiments

    return run_experiments(experiments, backend=backend, workdir=workdir, schema=schema, order=order, progress=progress, runtime=runtime)
