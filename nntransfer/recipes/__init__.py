"""Recipes and the runner.

* ``loading.load_recipe``: a recipe folder, ``.py`` file or module -> its transfer experiments.
* ``runner``: ``LocalBackend`` (no database) and ``DataJointBackend`` (tables and job reservation).
* ``digits_transfer``: the embedded example recipe the README's Quickstart runs.
"""
