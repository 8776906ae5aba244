"""The other names ``bias_transfer.configs`` exported (July 2021): their data sets, models, trainers and
main-loop modules have no counterpart here, so each refuses to be built (or used as a base class of a
config that is built) with one line naming what is missing."""

from typing import Any


def _unavailable(name: str, missing: str) -> type:
    message = (f"nntransfer.compat.bias_transfer: {name} cannot be kept here: {missing}; use nntransfer's own "
               f"classes (nntransfer.configs)")

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise ValueError(message)

    return type(name, (), {"__init__": __init__, "__doc__": f"bias_transfer's ``{name}``: refused ({missing}).",
                           "__module__": __name__, "REFUSAL": message})


MNIST = _unavailable("MNIST", "the original loader resized nothing and cropped MNIST to 32x32; not mapped")
MNISTTransfer = _unavailable("MNISTTransfer", "bias_transfer's generated MNIST-Transfer data sets are not available")
TinyImageNet = _unavailable("TinyImageNet", "bias_transfer's URL loader of TinyImageNet is not mapped")
ToyDatasetConfig = _unavailable("ToyDatasetConfig", "bias_transfer's toy data sets are not available")
Generated = _unavailable("Generated", "bias_transfer's transferred (coreset / generated) data sets are not available")
CIFAR10Model = _unavailable("CIFAR10Model", "its num_classes/input fields are not mapped (ModelConfig takes them from the data)")
CIFAR100Model = _unavailable("CIFAR100Model", "its num_classes/input fields are not mapped (ModelConfig takes them from the data)")
MNISTModel = _unavailable("MNISTModel", "bias_transfer's MNIST models are not mapped")
MNISTTransferModel = _unavailable("MNISTTransferModel", "bias_transfer's MNIST-Transfer models are not mapped")
SVHNModel = _unavailable("SVHNModel", "its num_classes/input fields are not mapped (ModelConfig takes them from the data)")
ToyModel = _unavailable("ToyModel", "bias_transfer's toy models are not available")
Regression = _unavailable("Regression", "bias_transfer's regression trainer is not available")
ToyTrainerConfig = _unavailable("ToyTrainerConfig", "bias_transfer's toy trainer is not available")
DataGenerationMixin = _unavailable("DataGenerationMixin", "bias_transfer's data generation for transfer is not available")
TransferMixin = _unavailable("TransferMixin", "bias_transfer's function/parameter regularisation modules are not mapped")
NoiseAdversarialMixin = _unavailable("NoiseAdversarialMixin", "no noise-adversarial training here")
RepresentationMatchingMixin = _unavailable(
    "RepresentationMatchingMixin", "bias_transfer's representation matching is not mapped (nntransfer has its own)")
RepresentationMonitorMixin = _unavailable(
    "RepresentationMonitorMixin", "bias_transfer's representation monitor is not mapped (nntransfer has its own)")
NoiseAugmentationMixin = _unavailable(
    "NoiseAugmentationMixin", "bias_transfer's noise augmentation is not mapped (nntransfer has its own)")
SimclrMixin = _unavailable("SimclrMixin", "no SimCLR here")
