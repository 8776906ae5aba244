"""The embedded example recipe: transfer between the two halves of scikit-learn's 8x8 digits.

Run it with ``nntransfer run nntransfer/recipes/digits_transfer`` (local backend, no database) or
``nntransfer run nntransfer.recipes.digits_transfer --store datajoint:NAME``.
Its modules define ``transfer_experiments``; the runner collects all of them.
"""
