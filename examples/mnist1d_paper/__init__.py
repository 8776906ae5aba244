"""Nix, Sinz et al. (AISTATS 2022), "Can Functional Transfer Methods Capture Simple Inductive Biases?",
on MNIST-1D: can a shift-invariant teacher pass its invariance to an MLP student?

The teacher is a bias-free 1-D CNN with circular padding and a global max (exactly invariant to circular
shifts); the student is an MLP 40 -> 600 -> 400 -> 10 without biases. Both train on signals shifted by
0-29 positions and are tested on seen (0-29), unseen (30-39) and all (0-39) shifts. Run it with
``nntransfer run examples/mnist1d_paper``, or ``python bench/paper_mnist1d.py`` for the table.
"""
