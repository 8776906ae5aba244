"""The config classes of sinzlab/bias_transfer (as of July 2021, built on the original nntransfer), for the
recipes of sinzlab/nntransfer_recipes: ``from bias_transfer.configs import *`` becomes
``from nntransfer.compat.bias_transfer.configs import *``; nothing else in a recipe changes.

Such a recipe also does ``from nntransfer.configs import *``. In the original stack its ``ImageDatasetConfig``,
``ModelConfig`` and ``TrainerConfig`` were the original nntransfer's classes: the data set class named
bias_transfer's torchvision loader in ``fn``, the model and trainer base classes named no function (the
bias_transfer subclasses ``ClassificationModel`` and ``Classification`` supplied bias_transfer's model
builder and image classification trainer). ``nntransfer.compat.bias_transfer.configs`` therefore exports
those three names too, with the meaning they have where bias_transfer supplies the functions, shadowing
this library's classes of the same names:

- ``ImageDatasetConfig``: the original defaults (CIFAR-10, batch size 128, 10% of the training set for
  validation, random crop with padding 4, horizontal flip and rotation by up to 15 degrees, normalisation
  with the original per-channel mean and std), read by this library's image loader;
- ``ModelConfig`` = ``ClassificationModel``: bias_transfer's model builder; ``lenet5`` is the original
  nntransfer's LeNet-5 (3x3 convolutions without padding, dropout after every hidden layer), registered
  here as the model type ``bias_transfer-lenet5`` (``nntransfer.compat.bias_transfer.models``);
- ``TrainerConfig`` = ``Classification``: the original trainer's defaults (Adam, lr 3e-4, multi-step
  schedule at epochs 30 and 60 with factor 0.8, early stopping on validation accuracy, 100 epochs,
  cross-entropy) on this library's classification trainer.

Every original field is accepted with its original default and translated into this library's fields
(``ALIASES``, ``nntransfer.configs.original``); a field or value without a counterpart here is refused with
one line. The other names bias_transfer exported (``MNISTTransfer``, ``CIFAR10Model``, its mixins...) refuse
to be built, with one line naming what is missing.
"""
