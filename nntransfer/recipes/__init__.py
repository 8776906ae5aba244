"""Recipes: folders of modules that list experiments.

* ``loading.load_recipe``: a recipe folder, ``.py`` file or module -> its transfer experiments;
  ``loading.as_recipe``: the same from whatever a notebook holds.
* ``digits_transfer``: the embedded example recipe the README's Quickstart runs.

Running them is the pipeline's job (``nntransfer.pipeline.runner``).
"""
