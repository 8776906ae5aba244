"""Nix, Sinz et al. (AISTATS 2022), "Can Functional Transfer Methods Capture Simple Inductive Biases?",
the 2-D half, shrunk to 2 CPU cores. ``nntransfer run examples/mnist2d_paper`` runs every module below;
``--experiment NAME`` one of them; ``python bench/paper_mnist2d.py --experiment NAME`` prints its table.

``chains.py`` (the translation table): can a CNN teacher pass its (approximate) translation invariance to an
MLP student on MNIST? Teacher ``cnn2d`` (3x3 convolutions, max pools, global average), student ``mlp`` 784 ->
512 -> 128 -> 32 -> 10 (dropout 0.1, no readout bias), both trained on plain centred digits and tested on the
clean test set, on MNIST-C's ``translate`` (``test_translate``: 3 pixels on both axes, random signs) and on
every shift of up to 4 pixels per axis (``test_translate_all``); see ``chains.py`` for what is shrunk.

``rotation.py``: a rotation-invariant group CNN teacher, the same MLP student, tested on rotated digits.
``resnet_vit.py``: a ResNet-18 teacher and the paper's small ViT student, tested as the translation table.
``loss_ablation.py``: orbit transfer of the translation table with each term of the orbit's loss on or off.
"""
