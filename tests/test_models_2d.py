"""The 2-D models of Nix, Sinz et al. (AISTATS 2022) on MNIST-sized inputs: the CNN teacher ``cnn2d``, the
MLP student (``mlp`` with the paper's options), the ResNet-18 teacher and the small ViT student ``vit``
(torchvision's ``VisionTransformer``). Real digits (scikit-learn's, upscaled to 28x28) go through the
builders; the layers the transfer methods read (``"readout"``, ``"output"``, dotted paths) are checked."""

import functools
import logging

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from nntransfer.configs import ClassificationModelConfig
from nntransfer.dataset.info import DataInfo, DataLoaders
from nntransfer.defaults import TASK_KEY
from nntransfer.models import (
    CoreReadoutModel,
    IntermediateLayerWrapper,
    build_model,
    check_model_config,
    classification_model_builder,
    model_spec,
    registered_types,
)

TEACHER = ClassificationModelConfig(type="cnn2d", dropout=0.1)  # mnist_2d_cnn_linear.py's TeacherModel
STUDENT = ClassificationModelConfig(type="mlp", options={"hidden_sizes": [512, 128, 32]}, dropout=0.1, readout_bias=False)
VIT = ClassificationModelConfig(type="vit")  # mnist_2d_resnet_vit.py's StudentModel
MNIST_SHAPE = (1, 28, 28)


@functools.lru_cache(maxsize=None)
def _digits28():
    digits = load_digits()
    images = torch.tensor(digits.images[:16], dtype=torch.float32).unsqueeze(1) / 16.0
    return F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False), torch.tensor(digits.target[:16])


def digit_loaders(batch_size=8):
    x, y = _digits28()
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)
    splits = {split: {TASK_KEY: loader} for split in ("train", "validation", "test")}
    return DataLoaders(splits, DataInfo(n_classes=10, input_shape=MNIST_SHAPE))


def representations(model, layers, inputs):
    model.eval()
    with torch.no_grad():
        extra, logits = IntermediateLayerWrapper(model, {name: name for name in layers})(inputs)
    return extra, logits


def n_parameters(model):
    return sum(p.numel() for p in model.parameters())


def test_the_new_types_are_registered_for_images():
    assert {"cnn2d", "vit"} <= set(registered_types())
    assert model_spec("cnn2d").input_dims == (3,) and model_spec("vit").input_dims == (3,)
    assert model_spec("cnn2d").options == {"channels": [128, 64, 64], "kernel_sizes": [3, 3, 3], "pool_sizes": [1, 2, 3],
                                           "padding": 0, "global_pool": "avg", "core_bias": True}
    assert model_spec("vit").options == {"patch_size": 7, "num_layers": 6, "num_heads": 8, "hidden_dim": 64,
                                         "mlp_dim": 128, "head": "mlp", "attention_dropout": 0.0}


def test_cnn2d_is_the_papers_teacher_with_its_layer_sizes():
    model = build_model(TEACHER, MNIST_SHAPE, 10, seed=0)
    assert list(dict(model.core.named_children())) == [
        "conv1", "relu1", "dropout1", "conv2", "relu2", "pool2", "dropout2", "conv3", "relu3", "pool3", "dropout3",
        "pool", "flatten"]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in (model.core.conv1, model.core.conv2, model.core.conv3)] == [
        (1, 128, (3, 3), (0, 0)), (128, 64, (3, 3), (0, 0)), (64, 64, (3, 3), (0, 0))]
    assert isinstance(model.core.pool, nn.AdaptiveAvgPool2d) and model.core.dropout1.p == 0.1
    assert (model.readout.fc.in_features, model.readout.fc.out_features) == (64, 10)
    # 1*128*9+128 + 128*64*9+64 + 64*64*9+64 + 64*10+10
    assert n_parameters(model) == 112_650
    x, _ = _digits28()
    extra, logits = representations(model, ["core.conv1", "core.pool2", "core.pool3", "readout"], x[:4])
    assert extra["core.conv1"].shape == (4, 128, 26, 26)
    assert extra["core.pool2"].shape == (4, 64, 12, 12)
    assert extra["core.pool3"].shape == (4, 64, 3, 3)
    assert extra["readout"].shape == (4, 64) and logits.shape == (4, 10)  # "output" of the transfer methods


def test_cnn2d_options_and_inputs_too_small_are_one_line_errors():
    model = build_model(ClassificationModelConfig(type="cnn2d", batch_norm=True, options={
        "channels": [8, 8], "kernel_sizes": [5, 3], "pool_sizes": [2, 1], "padding": 1, "global_pool": "max", "core_bias": False}),
        (3, 16, 16), 4, seed=0)
    assert model.core.conv1.bias is None and isinstance(model.core.bn2, nn.BatchNorm2d)
    assert "pool2" not in dict(model.core.named_children()) and isinstance(model.core.pool, nn.AdaptiveMaxPool2d)
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 4)
    with pytest.raises(ValueError, match=r"^options: 'channels', 'kernel_sizes' and 'pool_sizes' of model type 'cnn2d' need one entry per convolution, got 2, 3 and 3$"):
        build_model(ClassificationModelConfig(type="cnn2d", options={"channels": [8, 8]}), MNIST_SHAPE, 10)
    with pytest.raises(ValueError, match=r"^input shape \(1, 8, 8\) is too small for model type 'cnn2d': the feature map vanishes at conv3"):
        build_model(TEACHER, (1, 8, 8), 10)
    with pytest.raises(ValueError, match=r"has no global_pool 'mean'"):
        check_model_config(ClassificationModelConfig(type="cnn2d", options={"global_pool": "mean"}).to_dict())


def test_the_existing_mlp_is_the_papers_student():
    model = build_model(STUDENT, MNIST_SHAPE, 10, seed=0)
    linear = [(m.in_features, m.out_features, m.bias is not None) for m in (model.core.fc1, model.core.fc2, model.core.fc3, model.readout.fc)]
    assert linear == [(784, 512, True), (512, 128, True), (128, 32, True), (32, 10, False)]
    assert list(dict(model.core.named_children())) == ["flatten"] + [f"{n}{i}" for i in (1, 2, 3) for n in ("fc", "relu", "dropout")]
    assert n_parameters(model) == 784 * 512 + 512 + 512 * 128 + 128 + 128 * 32 + 32 + 32 * 10
    extra, _ = representations(model, ["core.fc1", "core.fc2", "core.fc3", "readout"], _digits28()[0][:2])
    assert [extra[k].shape[1] for k in ("core.fc1", "core.fc2", "core.fc3", "readout")] == [512, 128, 32, 32]


def test_resnet18_is_the_papers_teacher_for_28x28_mnist():
    model = build_model(ClassificationModelConfig(type="resnet18"), MNIST_SHAPE, 10, seed=0)
    stem = model.core.stem.conv
    assert (stem.in_channels, stem.kernel_size, stem.stride, stem.padding) == (1, (3, 3), (1, 1), (1, 1))
    assert "pool" not in dict(model.core.stem.named_children())
    extra, _ = representations(model, ["core.layer1", "core.layer4", "readout"], _digits28()[0][:2])
    assert extra["core.layer1"].shape == (2, 64, 28, 28) and extra["core.layer4"].shape == (2, 512, 4, 4)
    assert extra["readout"].shape == (2, 512, 4, 4)  # the readout pools globally (the original's AvgPool2d(4) here)


def test_vit_is_torchvisions_with_the_papers_sizes_and_the_data_channels():
    from torchvision.models.vision_transformer import VisionTransformer

    model = build_model(VIT, MNIST_SHAPE, 10, seed=0)
    assert isinstance(model.core, VisionTransformer) and isinstance(model.core.heads, nn.Identity)
    assert (model.core.conv_proj.in_channels, model.core.conv_proj.kernel_size, model.core.seq_length) == (1, (7, 7), 17)
    blocks = list(model.core.encoder.layers)
    assert len(blocks) == 6 and blocks[0].self_attention.num_heads == 8 and blocks[0].self_attention.embed_dim == 64
    assert blocks[0].mlp[0].out_features == 128
    assert [(m.in_features, m.out_features) for m in (model.readout.fc1, model.readout.fc)] == [(64, 128), (128, 10)]
    x = _digits28()[0][:3]
    extra, logits = representations(model, ["core.encoder.layers.encoder_layer_5", "core.encoder.layers.encoder_layer_0.mlp", "readout"], x)
    assert extra["core.encoder.layers.encoder_layer_5"].shape == (3, 17, 64)
    assert extra["core.encoder.layers.encoder_layer_0.mlp"].shape == (3, 17, 64)
    assert extra["readout"].shape == (3, 64) and logits.shape == (3, 10)
    linear_head = build_model(ClassificationModelConfig(type="vit", options={"head": "linear"}, readout_bias=False), MNIST_SHAPE, 10)
    assert list(dict(linear_head.readout.named_children())) == ["fc"] and linear_head.readout.fc.bias is None


def test_vit_takes_its_image_size_from_the_data_and_pads_what_patches_do_not_tile(caplog):
    small = ClassificationModelConfig(type="vit", options={"patch_size": 4, "num_layers": 1, "num_heads": 2, "hidden_dim": 8, "mlp_dim": 8})
    model = build_model(small, (3, 16, 16), 5, seed=0)
    assert model.core.image_size == 16 and model.core.conv_proj.in_channels == 3 and model.core.seq_length == 17
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 5)
    with caplog.at_level(logging.INFO, logger="nntransfer.models.vit"):
        padded = build_model(VIT, (1, 30, 30), 10, seed=0)
    assert "30x30 images are zero-padded at the bottom and right to 35x35 (a multiple of patch_size 7)" in caplog.text
    assert padded.core.image_size == 35 and padded.core.seq_length == 26
    x = torch.rand(2, 1, 30, 30)
    tokens = padded.core._process_input(F.pad(x, (0, 5, 0, 5)))
    extra, logits = representations(padded, ["core.conv_proj"], x)
    torch.testing.assert_close(extra["core.conv_proj"].flatten(2).transpose(1, 2), tokens)  # the padded image's patches
    assert logits.shape == (2, 10)
    with pytest.raises(ValueError, match=r"^options: 'hidden_dim' 60 of model type 'vit' must be a multiple of 'num_heads' 8$"):
        build_model(ClassificationModelConfig(type="vit", options={"hidden_dim": 60}), MNIST_SHAPE, 10)


@pytest.mark.parametrize("config", [TEACHER, STUDENT, VIT], ids=["cnn2d", "mlp", "vit"])
def test_the_paper_models_build_through_the_model_function_and_train(config):
    """As tests/test_models.py does for every type, at the paper's 28x28 (its 8x8 default is too small for
    ``cnn2d``)."""
    loaders = digit_loaders()
    model = classification_model_builder(loaders, seed=0, **config.to_dict())
    assert isinstance(model, CoreReadoutModel) and model.input_shape == MNIST_SHAPE
    inputs, targets = next(iter(loaders["train"][TASK_KEY]))
    model.train()
    F.cross_entropy(model(inputs), targets).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name
    again = classification_model_builder(loaders, seed=0, **config.to_dict())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
