"""sinzlab/orbit_transfer's config classes for the recipes of sinzlab/orbit_transfer_recipes.

``from orbit_transfer.configs import *`` becomes ``from nntransfer.compat.orbit_transfer.configs import *``;
nothing else in a recipe changes. Each class takes the original fields with the original defaults, in the
original idiom (``self.load_kwargs(**kwargs)``, then assignments, then ``super().__init__(**kwargs)``), and once
built holds this library's fields (``MNIST1DConfig``, ``ImageDatasetConfig``, ``ClassificationModelConfig``,
``ClassificationTrainerConfig``): what trains is this library's normal step, except for the MNIST-1D step loop,
which has its own trainer function here. An original meaning that cannot
be kept is refused when the config is made, with one line (``Refused``, a ``ValueError``).

What is mapped and what is refused (the module docstrings of ``configs.dataset``, ``configs.model`` and
``configs.trainer`` say why):

- data: ``MNIST1DDatasetConfig`` (``train_shift``; the original's "test" and "test_all" shifts) and ``MNIST``
  (``add_rotated_test``, ``add_corrupted_test``);
- models: ``CNNModel`` as ``cnn2d`` and ``MLPModel`` as ``mlp`` where their layers are the same, with the
  original layer paths of ``get_intermediate_rep`` translated; ``MNIST1DModelConfig``'s four model types as
  ``orbit_transfer-<type>`` and its learned orbit ``static_equivariance_transfer``
  (``nntransfer.compat.orbit_transfer.models``, which registers the types); the 2-D models of the paper:
  sinzlab/nntransfer's ResNet-18/34/50 as ``resnet*``, orbit_transfer's ViT as ``orbit_transfer-vit``, its P4
  group CNN as ``orbit_transfer-gcnn``, and ``TransferModel``'s learned orbits (``LearnedEquivariance``, on
  images, maps, logits and ViT tokens, and ``AffineLearnedEquivariance``); refused: LeNet, VGG;
- trainers: ``Classification`` (sinzlab/nntransfer's trainer fields, read as this library reads them, and
  ``scheduler="manual"`` with ``lr_milestones``) and ``SimpleTrainerConfig`` (the MNIST-1D step loop, trained by
  ``nntransfer.compat.orbit_transfer.simple_trainer``); ``TransferMixin``'s representation regularizers
  (``nntransfer.compat.orbit_transfer.representation``) and its ``EquivarianceTransfer``
  (``nntransfer.compat.orbit_transfer.equivariance``), with ``switch_teacher`` for learning the orbit.
"""

from nntransfer.compat.orbit_transfer._translate import Refused

__all__ = ["Refused"]
