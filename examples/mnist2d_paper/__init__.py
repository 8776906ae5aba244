"""Nix, Sinz et al. (AISTATS 2022), "Can Functional Transfer Methods Capture Simple Inductive Biases?",
the 2-D half, shrunk to 2 CPU cores: can a CNN teacher pass its (approximate) translation invariance to an
MLP student on MNIST?

Teacher ``cnn2d`` (3x3 convolutions, max pools, global average), student ``mlp`` 784 -> 512 -> 128 -> 32 ->
10 (dropout 0.1, no readout bias), both trained on plain centred digits and tested on the clean test set,
on MNIST-C's ``translate`` (``test_translate``: 3 pixels on both axes, random signs) and on every shift of
up to 4 pixels per axis (``test_translate_all``). Run it with ``nntransfer run examples/mnist2d_paper``,
or ``python bench/paper_mnist2d.py`` for the table; see ``chains.py`` for what is shrunk.

``rotation.py``: the rotation experiment (a rotation-invariant group CNN teacher, the same MLP student,
tested on rotated digits); ``nntransfer run examples/mnist2d_paper --experiment rotation`` runs it alone,
``python bench/paper_mnist2d.py --experiment rotation`` prints its table. ``resnet_vit.py``: the ResNet-18 ->
ViT experiment (``--experiment resnet_vit``).
"""
