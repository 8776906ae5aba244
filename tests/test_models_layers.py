"""Locally connected layers: a convolution without weight sharing."""

import pytest
import torch
from torch import nn

from nntransfer.models import LocallyConnected1d, LocallyConnected2d


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, 0), (3, 2, 1), (5, 1, 2), ((2, 3), (1, 2), (0, 1))])
def test_lc2d_with_shared_filters_equals_conv2d(kernel, stride, padding):
    conv = nn.Conv2d(2, 4, kernel, stride=stride, padding=padding)
    local = LocallyConnected2d(2, 4, (7, 9), kernel, stride=stride, padding=padding)
    x = torch.randn(3, 2, 7, 9)
    expected = conv(x)
    assert local.output_size == tuple(expected.shape[-2:])
    with torch.no_grad():
        local.weight.copy_(conv.weight[..., None, None].expand_as(local.weight))
        local.bias.copy_(conv.bias[:, None, None].expand_as(local.bias))
    assert torch.allclose(local(x), expected, atol=1e-5)


@pytest.mark.parametrize("kernel, stride, padding", [(3, 1, 0), (4, 2, 1)])
def test_lc1d_with_shared_filters_equals_conv1d(kernel, stride, padding):
    conv = nn.Conv1d(3, 5, kernel, stride=stride, padding=padding)
    local = LocallyConnected1d(3, 5, 11, kernel, stride=stride, padding=padding)
    x = torch.randn(2, 3, 11)
    expected = conv(x)
    with torch.no_grad():
        local.weight.copy_(conv.weight[..., None].expand_as(local.weight))
        local.bias.copy_(conv.bias[:, None].expand_as(local.bias))
    assert torch.allclose(local(x), expected, atol=1e-5)


def test_each_position_has_its_own_filter():
    local = LocallyConnected2d(1, 2, 6, 3, bias=False)
    x = torch.randn(1, 1, 6, 6)
    before = local(x)
    with torch.no_grad():
        local.weight[..., 1, 2] += 1.0  # filters of output position (1, 2) only
    diff = (local(x) - before).abs().sum(dim=(0, 1))
    assert diff[1, 2] > 0
    diff[1, 2] = 0
    assert torch.all(diff == 0)


def test_gradients_and_default_initialisation():
    local = LocallyConnected1d(4, 3, 10, 3, padding=1)
    assert local.weight.shape == (3, 4, 3, 10) and local.bias.shape == (3, 10)
    assert local.weight.abs().max() <= 1 / (4 * 3) ** 0.5
    local(torch.randn(2, 4, 10)).sum().backward()
    assert local.weight.grad.abs().sum() > 0 and local.bias.grad.abs().sum() > 0


def test_size_errors():
    with pytest.raises(ValueError, match="smaller than kernel"):
        LocallyConnected2d(1, 1, 4, 5)
    with pytest.raises(ValueError, match="smaller than kernel"):
        LocallyConnected1d(1, 1, 2, 3)
    with pytest.raises(ValueError, match=r"built for inputs of size \(6, 6\), got \(7, 7\)"):
        LocallyConnected2d(1, 1, 6, 3)(torch.zeros(1, 1, 7, 7))
    with pytest.raises(ValueError, match="built for inputs of length 6, got 5"):
        LocallyConnected1d(1, 1, 6, 3)(torch.zeros(1, 1, 5))
