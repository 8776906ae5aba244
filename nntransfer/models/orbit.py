"""`LearnedOrbit`: a learned representation of a finite group on the input and on named representations.

Orbit transfer (Nix, Sinz et al., AISTATS 2022, "Can Functional Transfer Methods Capture Simple Inductive
Biases?"): a step learns, from a frozen teacher, G transformations rho_g under which the teacher is
equivariant (``OrbitLearning``); a later step trains a student on the orbits rho_g x and to be equivariant
in the same way (``OrbitTransfer``). For 1-D signals every rho_g is a circular convolution along the last
axis, with one learned kernel per group element and layer; a one-hot kernel is a circular shift, so the
shifts of a shift-invariant teacher are exactly representable.

Convention: a kernel ``k`` of length K acts on ``x`` of length L (K <= L) as

    (rho x)[i] = sum_j k[j] * x[(i - (j - K // 2)) mod L]

so the one-hot kernel at index ``K // 2 + s`` is ``torch.roll(x, s, dims=-1)`` and the one at ``K // 2`` the
identity. The built module is the ``model`` of an orbit-learning step; its state dict holds one tensor
``kernels.<layer>`` of shape (G, K) per layer (dots in layer names become ``__``).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Mapping, Optional, Union

import torch
from torch import nn

from nntransfer.configs.model.orbit import ORBIT_INITS, ORBIT_INPUT, ORBIT_OUTPUT, OrbitConfig
from nntransfer.models.builder import input_shape_and_classes

logger = logging.getLogger(__name__)

INPUT = ORBIT_INPUT
OUTPUT = ORBIT_OUTPUT


def full_length_kernel(kernel: torch.Tensor, length: int) -> torch.Tensor:
    """Kernels ``(..., K)`` as full-length kernels ``(..., length)`` whose index ``m`` is the weight of the
    shift by ``m`` (mod length), following the module's convention (index ``K // 2`` of ``kernel`` is shift 0)."""
    size = kernel.shape[-1]
    if size > length:
        raise ValueError(f"a kernel of length {size} does not fit an axis of length {length}")
    padded = torch.nn.functional.pad(kernel, (0, length - size))
    return torch.roll(padded, -(size // 2), dims=-1)


def circular_convolution(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """``x`` of shape ``(B, ..., L)`` convolved circularly along its last axis with one kernel per example,
    ``kernel`` of shape ``(B, K)`` (or ``(K,)`` for all), K <= L; see the module docstring for the convention.
    Computed with the FFT (exact up to float rounding)."""
    length = x.shape[-1]
    h = full_length_kernel(kernel.to(x.dtype), length)
    if h.dim() == 2:
        if h.shape[0] != x.shape[0]:
            raise ValueError(f"{h.shape[0]} kernels for a batch of {x.shape[0]}")
        h = h.reshape(h.shape[0], *([1] * (x.dim() - 2)), length)
    spectrum = torch.fft.rfft(x.float(), dim=-1) * torch.fft.rfft(h.float(), dim=-1)
    return torch.fft.irfft(spectrum, n=length, dim=-1).to(x.dtype)


def shift_kernel(shift: int, size: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The one-hot kernel of length ``size`` that shifts by ``shift`` (mod ``size``, relative to the centre)."""
    kernel = torch.zeros(size, dtype=dtype)
    kernel[(size // 2 + shift) % size] = 1.0
    return kernel


def _key(layer: str) -> str:
    return layer.replace(".", "__")


class LearnedOrbit(nn.Module):
    """G learned transformations per layer: ``transform(x, g, layer)`` is rho_g on that layer.

    Args:
        group_size: G.
        lengths: {layer name: length L of the axis the group acts on}; must include ``"input"``.
        kernel_size: K (None: L of each layer; larger values are cut to L).
        init: ``"random"`` (N(0, 1/K) entries), ``"identity"`` or ``"shift"`` (element g is the circular
            shift by round(g * L / G), except on ``"output"``, where it is the identity).
        init_noise: std of the noise added to ``"identity"``/``"shift"`` kernels.
        input_shape, n_classes: of the data the orbit was built for (informative).
    """

    def __init__(
        self,
        group_size: int,
        lengths: Mapping[str, int],
        kernel_size: Optional[int] = None,
        init: str = "random",
        init_noise: float = 0.0,
        input_shape: Optional[tuple] = None,
        n_classes: Optional[int] = None,
    ) -> None:
        super().__init__()
        if INPUT not in lengths:
            raise ValueError(f"lengths must include {INPUT!r}, got {sorted(lengths)}")
        if init not in ORBIT_INITS:
            raise ValueError(f"init must be one of {ORBIT_INITS}, got {init!r}")
        keys = [_key(layer) for layer in lengths]
        if len(set(keys)) != len(keys):
            raise ValueError(f"layer names {sorted(lengths)} collide once dots become '__'")
        self.group_size = int(group_size)
        self.lengths: Dict[str, int] = {layer: int(length) for layer, length in lengths.items()}
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.n_classes = n_classes
        self.kernels = nn.ParameterDict()
        for layer, length in self.lengths.items():
            size = length if kernel_size is None else min(int(kernel_size), length)
            self.kernels[_key(layer)] = nn.Parameter(self._initial_kernels(layer, length, size, init, init_noise))

    def _initial_kernels(self, layer: str, length: int, size: int, init: str, noise: float) -> torch.Tensor:
        G = self.group_size
        if init == "random":
            return torch.randn(G, size) / size ** 0.5
        kernels = torch.zeros(G, size)
        for g in range(G):
            shift = 0 if init == "identity" or layer == OUTPUT else int(round(g * length / G))
            shift = (shift + length // 2) % length - length // 2  # the same shift, in [-L//2, L - L//2)
            index = size // 2 + shift
            if 0 <= index < size:  # else the shift does not fit a short kernel: the element starts at zero
                kernels[g, index] = 1.0
        return kernels + noise * torch.randn(G, size) if noise else kernels

    @property
    def layers(self):
        """The layer names, ``"input"`` first."""
        return list(self.lengths)

    def kernel(self, layer: str) -> torch.Tensor:
        """The kernels of ``layer``, shape (G, K)."""
        if layer not in self.lengths:
            raise ValueError(f"the orbit has no layer {layer!r}; it has {self.layers}")
        return self.kernels[_key(layer)]

    def inverse_index(self, g: torch.Tensor) -> torch.Tensor:
        """The index of the inverse element: (-g) mod G."""
        return torch.remainder(-g, self.group_size)

    def sample(self, n: int, device: Union[str, torch.device, None] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """``n`` group elements drawn uniformly (LongTensor)."""
        return torch.randint(0, self.group_size, (n,), device=device, generator=generator)

    def transform(self, x: torch.Tensor, g: Union[torch.Tensor, int], layer: str = INPUT) -> torch.Tensor:
        """rho_g on ``layer`` applied to ``x``, one element per example (``g``: LongTensor (B,) or an int for
        all). ``x`` has shape ``(B, ..., L)``; a flat ``(B, D)`` with D a multiple of L is read as
        ``(B, D / L, L)`` (a flattened ``(channels, length)`` map) and returned flat."""
        kernels = self.kernel(layer)
        length = self.lengths[layer]
        shape = x.shape
        if shape[-1] != length:
            if x.dim() == 2 and shape[-1] % length == 0:
                x = x.reshape(shape[0], -1, length)
            else:
                raise ValueError(f"orbit layer {layer!r} acts on an axis of length {length}; got a representation of shape {tuple(shape)}")
        if not isinstance(g, torch.Tensor):
            g = torch.full((shape[0],), int(g), dtype=torch.long, device=x.device)
        if g.shape != (shape[0],):
            raise ValueError(f"one group element per example: g has shape {tuple(g.shape)} for a batch of {shape[0]}")
        g = torch.remainder(g.to(kernels.device), self.group_size)
        return circular_convolution(x, kernels[g]).reshape(shape)

    def forward(self, x: torch.Tensor, g: Optional[torch.Tensor] = None) -> torch.Tensor:
        """rho_g x on the input; ``g`` None: one element per example drawn uniformly (global RNG). The
        trainers do not need it (the orbit modules call ``transform``); it makes the module callable like a
        model, e.g. to look at transformed inputs."""
        if g is None:
            g = self.sample(x.shape[0], device=x.device)
        return self.transform(x, g, INPUT)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, lengths={self.lengths}"


def orbit_lengths(config: OrbitConfig, input_shape: tuple, n_classes: int) -> Dict[str, int]:
    """{layer: length} of the config for data of ``input_shape`` and ``n_classes``, ``"input"`` first."""
    lengths = {INPUT: int(input_shape[-1])}
    for layer, length in config.layers.items():
        lengths[layer] = int(n_classes) if length is None else int(length)
    return lengths


def learned_orbit_builder(dataloaders: Mapping[str, Any], seed: Optional[int], state_dict: Optional[Mapping[str, Any]] = None,
                          **config: Any) -> LearnedOrbit:
    """Build the ``LearnedOrbit`` of ``OrbitConfig(**config)`` for the data in ``dataloaders`` (the input's
    last axis gives the input length, the number of classes the length of ``"output"`` when it is None).
    ``seed`` seeds the initial kernels (the global random state is left as it was); ``state_dict``: trained
    kernels, which must fit exactly."""
    orbit_config = OrbitConfig.from_dict(config, carry_unknown=True)  # a recipe subclass's own fields: unused
    input_shape, n_classes = input_shape_and_classes(dataloaders)
    lengths = orbit_lengths(orbit_config, input_shape, n_classes)
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(int(seed))
        model = LearnedOrbit(orbit_config.group_size, lengths, orbit_config.kernel_size, orbit_config.init,
                             orbit_config.init_noise, input_shape=input_shape, n_classes=n_classes)
    logger.info("built a learned orbit of %d elements on %s", orbit_config.group_size, lengths)
    if state_dict is not None:
        state = {name: torch.as_tensor(value) for name, value in state_dict.items()}
        own = model.state_dict()
        wrong = sorted(set(own) ^ set(state)) + sorted(n for n in set(own) & set(state) if own[n].shape != state[n].shape)
        if wrong:
            raise ValueError(f"the orbit weights do not fit the orbit OrbitConfig builds (keys or shapes differ: {wrong[:4]})")
        model.load_state_dict(state)
    return model


def check_orbit_config(config: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` (one line) for an invalid ``OrbitConfig`` dict (the run layer calls it first)."""
    OrbitConfig.from_dict(dict(config), carry_unknown=True)


learned_orbit_builder.check_config = check_orbit_config
