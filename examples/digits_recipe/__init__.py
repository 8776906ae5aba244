"""A small transfer recipe on scikit-learn's 8x8 digits (no download): does pre-training on the
digits 0-4 help to learn the digits 5-9? Run it with ``nntransfer run examples/digits_recipe``."""
