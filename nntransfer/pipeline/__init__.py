"""The run layer: the one path a step takes, the stores that keep results, and the runner.

* :mod:`nntransfer.pipeline.step`: ``run_step`` builds the data, the model (from the previous step's weights
  where asked) and trains; ``train_and_store`` wraps it with a store. Nothing else trains.
* :mod:`nntransfer.pipeline.store`: the ``Store`` interface, the status walk (written once, over any store).
* :mod:`nntransfer.pipeline.local`: ``LocalStore``, a work folder (``local:DIR``). The DataJoint store lives
  in ``nntransfer.tables.store`` (``datajoint:SCHEMA``; it needs the database).
* :mod:`nntransfer.pipeline.backends`: store backends by scheme (``register_store``, the ``nntransfer.stores``
  entry points); :mod:`nntransfer.pipeline.addresses`: ``open_store(address)``, the one place an address
  becomes a store.
* :mod:`nntransfer.pipeline.validation`: every name a recipe uses is checked before anything is written.
* :mod:`nntransfer.pipeline.runner`: ``run_experiments``, what the CLI and notebooks call.
"""
