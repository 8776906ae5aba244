"""nntransfer: reproducible transfer-learning experiments on PyTorch, DataJoint and nnfabrik.

Importing the package loads nothing heavy: configs are plain data, torch comes with the pipeline and
DataJoint only with the tables (``nntransfer.tables``), which connect when activated.
"""

import logging

__version__ = "0.6.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())


def run(experiments, store=None, workdir=None, schema=None, order="original", progress=True, runtime=None,
        chains=None, seeds=None, fast_dev_run=False, rerun_changed=False, reuse_changed=False, dry_run=False):
    """Train ``experiments`` (a recipe, ``{Description: TransferExperiment}``, a ``TransferExperiment``,
    an ``Experiment`` or a list of those) in the store at the address ``store`` (``"local:DIR"``,
    ``"datajoint:SCHEMA"``; default ``local:./nntransfer_work``; ``workdir=DIR`` and ``schema=NAME`` are
    shortcuts); returns every step's status.
    ``chains`` and ``seeds`` pick part of a recipe; ``fast_dev_run=True`` checks the pending steps for a couple
    of batches each and stores nothing. A stored step whose user code changed since it was trained stops the run
    (``nntransfer.errors.CodeChanged``) unless ``rerun_changed`` or ``reuse_changed``; ``dry_run=True`` returns
    what a run would do and writes nothing. See :func:`nntransfer.pipeline.runner.run_experiments`."""
    # Loaded on call: importing nntransfer (e.g. for its configs) must not load torch.
    from nntransfer.pipeline.runner import run_experiments

    return run_experiments(experiments, store=store, workdir=workdir, schema=schema, order=order, progress=progress, runtime=runtime,
                           chains=chains, seeds=seeds, fast_dev_run=fast_dev_run, rerun_changed=rerun_changed,
                           reuse_changed=reuse_changed, dry_run=dry_run)


def submit(recipe, store=None, schema=None, workers=1, **options):
    """Check ``recipe`` (a folder, .py file or module name) as :func:`run` does, fill the store at the address
    ``store`` (``"datajoint:SCHEMA"``, or ``schema=NAME``) and submit ``workers`` ``nntransfer worker`` tasks
    for it as one SLURM job array; returns the recorded submission (its ``job_id``, ``log_dir``). ``options``:
    ``partition``, ``time``, ``cpus_per_task``, ``mem``, ``gpus_per_task``, ``setup``, ``slurm_parameters``,
    ``requeue``, ``log_dir``, ``experiment``, ``chains``, ``seeds``, ``runtime``, ... See
    :func:`nntransfer.cluster.submit.submit`."""
    from nntransfer.cluster.submit import submit as submit_workers

    return submit_workers(recipe, store=store, schema=schema, workers=workers, **options)


def forget(step, store=None, workdir=None, schema=None, recipe=None, experiment=None):
    """Delete a stored step (an id or unique prefix, or ``NAME:SEED:STEP`` with ``recipe``) and every step
    stored after it in any chain, from the store at the address ``store`` (or the work folder ``workdir``,
    or the schema ``schema``); returns the deleted steps' records. See :func:`nntransfer.analysis.forget.forget`."""
    from nntransfer.analysis.forget import forget as forget_steps

    return forget_steps(step, store=store, workdir=workdir, schema=schema, recipe=recipe, experiment=experiment)
