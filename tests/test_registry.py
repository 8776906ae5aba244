"""The one ``Registry`` class, and everything registered with it: data sets, model types, main-loop
modules, optimizers, losses, schedulers, cyclers and weight initialisations."""

import inspect

import pytest
import torch
from torch import nn

import nntransfer.compat.bias_transfer.models  # noqa: F401  (registers the companion libraries' model types:
import nntransfer.compat.orbit_transfer.models  # noqa: F401  every registered type is tested below)
from nntransfer.configs import ClassificationModelConfig
from nntransfer.dataset import DATASETS, DatasetSpec, available_datasets, get_dataset
from nntransfer.models import MODELS, WEIGHT_INITS, CoreReadoutModel, build_model, model_spec
from nntransfer.registry import Registry, closest_name, did_you_mean
from nntransfer.trainer.controls import LOSSES, OPTIMIZERS, SCHEDULERS, build_scheduler, is_plateau
from nntransfer.trainer.cycler import CYCLERS
from nntransfer.trainer.main_loop_modules import HOOKS, MODULES, MainLoopModule

# ---------------------------------------------------------------------- the class


def test_register_get_available_and_contains():
    fruits = Registry("fruit")
    fruits.register("apple", 1)

    @fruits.register("pear")
    def pear():
        return 2

    assert fruits.get("apple") == 1 and fruits.get("pear") is pear
    assert fruits.available() == ["apple", "pear"]
    assert "apple" in fruits and "Apple" not in fruits and 3 not in fruits


def test_unknown_name_is_one_line_with_the_closest_name_and_what_exists():
    fruits = Registry("fruit", help="add one with fruits.register")
    fruits.register("apple", 1)
    fruits.register("banana", 2)
    with pytest.raises(ValueError) as excinfo:
        fruits.get("aple")
    assert str(excinfo.value) == (
        "unknown fruit 'aple'; did you mean 'apple'? (available: apple, banana); add one with fruits.register"
    )
    with pytest.raises(ValueError, match=r"^unknown fruit 'zzz' \(available: apple, banana\)"):
        fruits.get("zzz")  # nothing close: no hint


def test_case_insensitive_names_keep_their_spelling():
    sets = Registry("data set", case_sensitive=False)
    sets.register("CIFAR10", "c")
    assert sets.get("cifar10") == "c" and "Cifar10" in sets and sets.available() == ["CIFAR10"]
    with pytest.raises(ValueError, match="did you mean 'CIFAR10'"):
        sets.get("cifar01")


def test_a_taken_name_needs_overwrite():
    fruits = Registry("fruit")
    fruits.register("apple", 1)
    fruits.register("apple", 1)  # the same object again is fine
    with pytest.raises(ValueError, match="already registered"):
        fruits.register("apple", 2)
    fruits.register("apple", 2, overwrite=True)
    assert fruits.get("apple") == 2


def test_fallback_finds_and_registers_unlisted_names():
    calls = []

    def fallback(name):
        calls.append(name)
        return name.upper() if name.startswith("x.") else None

    names = Registry("thing", fallback=fallback)
    assert names.get("x.y") == "X.Y" and names.get("x.y") == "X.Y"
    assert calls == ["x.y"] and "x.y" in names  # found once, then registered
    with pytest.raises(ValueError, match="unknown thing 'other'"):
        names.get("other")


def test_the_hint_formatter():
    assert closest_name("Adm", ["Adam", "SGD"]) == "Adam" and closest_name("zzz", ["Adam"]) is None
    assert did_you_mean("Adm", ["Adam", "SGD"]) == "; did you mean 'Adam'?" and did_you_mean("zzz", ["Adam"]) == ""


def test_every_kind_of_name_has_its_registry():
    assert {"Digits", "MNIST", "CIFAR10"} <= set(DATASETS.available())
    assert {"lenet5", "resnet18", "vgg11"} <= set(MODELS.available())
    assert {"NoiseAugmentation", "KnowledgeDistillation", "OrbitTransfer"} <= set(MODULES.available())
    assert {"Adam", "SGD"} <= set(OPTIMIZERS.available()) and "CrossEntropyLoss" in LOSSES
    assert SCHEDULERS.available() == ["cosine", "multistep", "plateau"]
    assert CYCLERS.available() == ["main_task", "round_robin"]
    assert WEIGHT_INITS.available() == ["default", "kaiming_normal", "xavier_uniform"]


# ---------------------------------------------------------------------- everything registered


@pytest.mark.parametrize("name", available_datasets())
def test_every_data_set_name_round_trips(name):
    spec = get_dataset(name)
    assert isinstance(spec, DatasetSpec) and spec.name == name
    assert get_dataset(name.lower()) is spec and get_dataset(name.upper()) is spec
    assert len(spec.mean) == len(spec.std) and all(s > 0 for s in spec.std)


def _smallest_fitting_model(config, channels=3, n_classes=4):
    """The model of ``config`` on the smallest of a few input sizes it accepts (square images, or signals
    ``(channels, length)`` for a type that takes those): ``(model, input shape)``."""
    signals = model_spec(config.type).input_dims == (2,)
    for size in (8, 16, 28, 32, 64):  # 28: MNIST's, which a ViT of 7x7 patches needs
        shape = (channels, size) if signals else (channels, size, size)
        try:
            return build_model(config, shape, n_classes, seed=0), shape
        except ValueError as err:
            if "take one channel" in str(err) and channels != 1:  # orbit_transfer's MNIST-1D models
                return _smallest_fitting_model(config, 1, n_classes)
            if "too small" not in str(err) and "does not fit" not in str(err):
                raise
    raise AssertionError(f"{config.type} builds on no input up to 64x64")


def _model_variants():
    """Every model type with every declared choice of its options (one option varied at a time)."""
    for model_type in MODELS.available():
        spec = model_spec(model_type)
        small = {"readout_hidden_size": 8} if "readout_hidden_size" in spec.options else {}
        yield model_type, small
        for option, values in spec.choices.items():
            for value in values:
                if value != spec.options[option]:
                    yield model_type, dict(small, **{option: value})


@pytest.mark.parametrize("model_type, options", list(_model_variants()), ids=str)
def test_every_model_type_and_declared_variant_builds_on_a_tiny_input(model_type, options):
    config = ClassificationModelConfig(type=model_type, options=options)
    try:
        model, shape = _smallest_fitting_model(config)
    except ImportError as err:  # a variant of an optional extra that is not installed (gcnn's escnn backend)
        if "pip install 'nntransfer[" not in str(err):
            raise
        pytest.skip(str(err))
    assert isinstance(model, CoreReadoutModel) and model.model_type == model_type
    model.eval()
    with torch.no_grad():
        assert model(torch.zeros(2, *shape)).shape == (2, 4)


# How ModuleChain calls each hook (see nntransfer.trainer.main_loop_modules.base): the mode, or the batch's state.
_HOOK_CALLS = {"pre_epoch": "Training", "post_epoch": "Training"}


@pytest.mark.parametrize("name", MODULES.available())
def test_every_main_loop_module_has_every_hook_with_the_calling_convention(name):
    module_cls = MODULES.get(name)
    assert isinstance(module_cls, type) and issubclass(module_cls, MainLoopModule)
    for hook in HOOKS:
        inspect.signature(getattr(module_cls, hook)).bind(None, _HOOK_CALLS.get(hook))  # TypeError if it does not fit


@pytest.mark.parametrize("name", WEIGHT_INITS.available())
def test_every_weight_init_runs(name):
    layer = nn.Linear(4, 3)
    WEIGHT_INITS.get(name)(nn.Sequential(layer))
    assert torch.isfinite(layer.weight).all()


_SCHEDULER_OPTIONS = {"multistep": {"milestones": [1]}}


@pytest.mark.parametrize("name", SCHEDULERS.available())
def test_every_scheduler_builds_on_the_optimizer_and_lowers_the_lr(name):
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = build_scheduler(name, optimizer, 3, True, _SCHEDULER_OPTIONS.get(name, {}))
    assert scheduler.optimizer is optimizer
    for _ in range(20):  # a plateau scheduler waits its patience on a score that never improves
        optimizer.step()
        scheduler.step(0.0) if is_plateau(scheduler) else scheduler.step()
    assert optimizer.param_groups[0]["lr"] < 0.1


_CYCLER_OPTIONS = {"main_task": {"main_task": "a"}}


@pytest.mark.parametrize("name", CYCLERS.available())
def test_every_cycler_schedules_every_task(name):
    order = CYCLERS.get(name)({"a": 3, "b": 2}, **_CYCLER_OPTIONS.get(name, {}))
    assert set(order) == {"a", "b"} and order.count("a") >= 3
