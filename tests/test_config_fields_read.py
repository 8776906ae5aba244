"""The original sinzlab recipes run as written, or fail before anything trains:

1. a field that a recipe's subclass declares and no function reads is refused by the recipe check (with the
   closest field), unless the config's function is the user's own or a mixin of its main-loop modules declares it;
2. a mixin's defaults never beat a value the recipe's own class assigns ("an outer subclass wins");
3. numpy scalars are taken where Python numbers are, and name the same experiment.
"""

import uuid

import numpy as np
import pytest
from recipe_factory import write_recipe

import nntransfer
from nntransfer.cli.main import EXIT_BAD_INPUT, main
from nntransfer.configs import (
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Description,
    Experiment,
    ImageDatasetConfig,
    KnowledgeDistillationMixin,
    OrbitLearningMixin,
    TransferExperiment,
    TransferMethodMixin,
)
from nntransfer.errors import ChainCheckError
from nntransfer.pipeline.validation import unread_fields, validate_recipe
from nntransfer.recipes.loading import as_recipe
from nntransfer.trainer.main_loop_modules import MainLoopModule, register

# ---------------------------------------------------------------------------- recipe classes, as the originals write them


class BaselineDataset(ImageDatasetConfig):
    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.dataset_cls = "Digits"
        self.input_size = 8
        self.batch_size = 64
        super().__init__(**kwargs)


class ShiftedDataset(BaselineDataset):
    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.train_shift = 30  # orbit_transfer's MNIST-1D config read it; nntransfer's loader does not
        super().__init__(**kwargs)


class BaselineModel(ClassificationModelConfig):
    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.type = "lenet300-100"
        super().__init__(**kwargs)


class BaselineTrainer(ClassificationTrainerConfig):
    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.max_iter = 2
        self.lr = 0.001
        super().__init__(**kwargs)


class OriginalNamesTrainer(BaselineTrainer):
    """orbit_transfer's SimpleTrainerConfig names: declared, hashed, and read by nntransfer's trainer never."""

    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.learning_rate = 0.01
        self.total_steps = 8000
        super().__init__(**kwargs)


def recipe_of(*steps, name="original", seed=1):
    return as_recipe({Description(name, seed): TransferExperiment([Experiment(*step, seed=seed) for step in steps])})


# ---------------------------------------------------------------------------- 1. fields read by nothing


def test_a_field_no_function_reads_is_refused_before_training_with_the_closest_field():
    recipe = recipe_of((BaselineDataset(), BaselineModel(), BaselineTrainer()),
                       (BaselineDataset(), BaselineModel(), OriginalNamesTrainer(reset=["readout"])), name="kd sweep")
    with pytest.raises(ChainCheckError) as caught:
        validate_recipe(recipe)
    problems = caught.value.problems
    assert len(problems) == 2 and all("\n" not in line for line in problems)
    lr_line = next(line for line in problems if ".learning_rate " in line)
    assert lr_line.startswith("experiment 'kd sweep' (seed 1) step 1: OriginalNamesTrainer.learning_rate is read by nothing")
    assert "did you mean 'lr'?" in lr_line and "OriginalNamesTrainer.fn" in lr_line
    steps_line = next(line for line in problems if ".total_steps " in line)
    assert "'max_iter'" in steps_line


def test_dataset_and_model_fields_read_by_nothing_are_refused_too():
    class CoresetModel(BaselineModel):
        def __init__(self, **kwargs):
            self.coreset_size = 200
            super().__init__(**kwargs)

    (dataset_line,) = unread_fields(ShiftedDataset())
    assert dataset_line.startswith("ShiftedDataset.train_shift is read by nothing") and "dataset_kwargs" in dataset_line
    (model_line,) = unread_fields(CoresetModel())
    assert model_line.startswith("CoresetModel.coreset_size is read by nothing")
    with pytest.raises(ChainCheckError, match=r"step 0: ShiftedDataset\.train_shift"):
        validate_recipe(recipe_of((ShiftedDataset(), CoresetModel(), BaselineTrainer())))


def test_a_field_of_the_original_forms_student_model_read_by_nothing_is_refused_too():
    class StudentModel(BaselineModel):
        def __init__(self, **kwargs):
            self.load_kwargs(**kwargs)
            self.type = "mlp"
            self.coreset_size = 200
            super().__init__(**kwargs)

    trainer = BaselineTrainer(student_model=StudentModel().to_dict())
    (line,) = unread_fields(trainer)
    assert line.startswith("BaselineTrainer.student_model['coreset_size'] is read by nothing")
    assert unread_fields(BaselineTrainer(student_model=BaselineModel(type="mlp").to_dict())) == []


def test_dry_run_reports_it_and_writes_nothing(tmp_path):
    recipe = recipe_of((BaselineDataset(), BaselineModel(), OriginalNamesTrainer()))
    work = tmp_path / "work"
    with pytest.raises(ChainCheckError, match=r"OriginalNamesTrainer\.learning_rate .*did you mean 'lr'\?"):
        nntransfer.run(recipe, store=f"local:{work}", dry_run=True, progress=False)
    assert not work.exists() or not any(work.rglob("*.pt"))


def test_the_command_says_it_in_one_line_per_field(tmp_path, capsys):
    folder = write_recipe(tmp_path, f"fields_{uuid.uuid4().hex[:6]}", """
from nntransfer.configs import *


class Trainer(ClassificationTrainerConfig):
    def __init__(self, **kwargs):
        self.learning_rate = 0.01
        super().__init__(**kwargs)


data = ImageDatasetConfig(dataset_cls="Digits", input_size=8)
transfer_experiments = {Description("lr", 1): TransferExperiment([
    Experiment(data, ClassificationModelConfig(type="mlp"), Trainer(max_iter=1), seed=1)])}
""")
    assert main(["run", str(folder), "--dry-run", "--workdir", str(tmp_path / "work")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "experiment 'lr' (seed 1) step 0: Trainer.learning_rate is read by nothing" in err
    assert "did you mean 'lr'?" in err and err.count("learning_rate is read") == 1


def test_a_field_a_builtin_mixin_declares_is_read():
    class KDTrainer(KnowledgeDistillationMixin, BaselineTrainer):
        def __init__(self, **kwargs):
            self.load_kwargs(**kwargs)
            self.kd_weight = 0.3  # the mixin's field, set by the recipe's class
            self.kd_temperature = 2.0
            super().__init__(**kwargs)

    trainer = KDTrainer(teacher="previous", start_from_previous=False)
    assert (trainer.kd_weight, unread_fields(trainer)) == (0.3, [])
    validate_recipe(recipe_of((BaselineDataset(), BaselineModel(), BaselineTrainer()),
                              (BaselineDataset(), BaselineModel(type="mlp"), trainer)))

    class NoMixin(BaselineTrainer):  # the same field without the mixin: nothing reads it
        def __init__(self, **kwargs):
            self.kd_weight = 0.3
            super().__init__(**kwargs)

    (line,) = unread_fields(NoMixin())
    assert "it is a field of KnowledgeDistillationMixin: derive NoMixin from it" in line


class ProbeWeightMixin(TransferMethodMixin):
    """A user's own transfer method: its mixin declares a field, its module reads it."""

    def __init__(self, **kwargs):
        self.set_defaults(probe_weight=1.0)
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        self.add_main_loop_module("FieldsReadProbe")


@register
class FieldsReadProbe(MainLoopModule):
    config_mixin = ProbeWeightMixin

    def post_forward(self, state):
        state.add_loss("probe", state.output.logits.sum() * 0, self.config.probe_weight)


def test_a_users_mixin_whose_module_reads_its_fields_keeps_working():
    class ProbeTrainer(ProbeWeightMixin, BaselineTrainer):
        def __init__(self, **kwargs):
            self.probe_weight = 0.5
            super().__init__(**kwargs)

    trainer = ProbeTrainer()
    assert trainer.main_loop_modules == ["FieldsReadProbe"] and unread_fields(trainer) == []
    validate_recipe(recipe_of((BaselineDataset(), BaselineModel(), trainer)))


def test_a_config_of_the_users_own_function_may_carry_any_field():
    from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig

    class OwnLoader(ImageDatasetConfig):  # a library class with the user's function: it reads what it reads
        fn = "toy_steps.toy_dataset"

        def __init__(self, **kwargs):
            self.train_shift = 30
            self.size = 4
            super().__init__(**kwargs)

    assert unread_fields(OwnLoader()) == [] and unread_fields(ToyTrainerConfig()) == []
    validate_recipe(recipe_of((ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig())))


def test_the_shipped_recipe_passes():
    validate_recipe(as_recipe("nntransfer.recipes.digits_transfer"))


# ---------------------------------------------------------------------------- 2. an outer subclass wins over a mixin's defaults


class RecipeBase(ClassificationTrainerConfig):
    """A recipe's base class, written as the originals wrote theirs (assignments before super().__init__)."""

    def __init__(self, **kwargs):
        self.lr = 0.001
        self.max_iter = 7
        super().__init__(**kwargs)


class LoadKwargsBase(ClassificationTrainerConfig):
    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.lr = 0.001
        super().__init__(**kwargs)


@pytest.mark.parametrize("base", [RecipeBase, LoadKwargsBase])
def test_the_recipe_base_class_wins_over_a_mixins_default(base):
    class OrbitStep(OrbitLearningMixin, base):
        pass

    assert OrbitStep().lr == 0.001  # the mixin's lr=0.01 is a default; the recipe's Base assigned 0.001
    assert OrbitStep(lr=0.2).lr == 0.2  # a keyword wins over every class
    assert OrbitStep().get_key() == OrbitStep(lr=0.001).get_key()
    assert (OrbitStep().early_stopping, OrbitStep().teacher) == (False, "previous")  # what Base leaves: the mixin's


def test_a_mixins_default_still_beats_the_librarys_and_the_outer_recipe_class_still_wins():
    class OrbitStep(OrbitLearningMixin, ClassificationTrainerConfig):
        pass

    assert OrbitStep().lr == 0.01  # the mixin changes the library's default (0.001) for its step

    class Outer(RecipeBase):
        def __init__(self, **kwargs):
            self.lr = 0.003
            super().__init__(**kwargs)

    class OuterStep(OrbitLearningMixin, Outer):
        pass

    assert OuterStep().lr == 0.003

    class RecipeMixin:  # a recipe's own mixin assigns: among the recipe's classes the first in the MRO wins
        def __init__(self, **kwargs):
            self.lr = 0.05
            super().__init__(**kwargs)

    class Mixed(RecipeMixin, OrbitLearningMixin, RecipeBase):
        pass

    assert (Mixed().lr, Mixed().max_iter) == (0.05, 7)

    class OrderFlipped(RecipeBase, OrbitLearningMixin):
        pass

    assert OrderFlipped().lr == 0.001


def test_the_recipe_class_wins_for_a_field_the_mixin_declares_with_a_dataset_subclass_too():
    from nntransfer.configs import MNIST1DConfig

    class Base(ImageDatasetConfig):
        def __init__(self, **kwargs):
            self.batch_size = 32
            super().__init__(**kwargs)

    class Data(MNIST1DConfig, Base):  # MNIST1DConfig's batch_size=100 is a default
        pass

    assert (Data().batch_size, Data().dataset_cls) == (32, "MNIST1D")


# ---------------------------------------------------------------------------- 3. numpy scalars


def test_a_numpy_seed_names_the_same_experiment_as_the_int():
    parts = (BaselineDataset(), BaselineModel(), BaselineTrainer())
    numpy_seeded = Experiment(*parts, seed=np.int64(1))
    assert numpy_seeded.get_key() == Experiment(*parts, seed=1).get_key() and type(numpy_seeded.seed) is int
    assert Experiment(*parts, seed=np.int32(7)).get_key()["seed"] == 7


@pytest.mark.parametrize("field, numpy_value, value", [
    ("max_iter", np.int64(5), 5),
    ("lr_warmup", np.int32(2), 2),
    ("lr", np.float32(0.003), 0.003),
    ("lr", np.float64(0.003), 0.003),
    ("early_stopping", np.bool_(False), False),
])
def test_a_numpy_field_value_names_the_same_config_as_the_python_number(field, numpy_value, value):
    config = ClassificationTrainerConfig(**{field: numpy_value})
    assert config.get_key() == ClassificationTrainerConfig(**{field: value}).get_key()
    assert type(getattr(config, field)) is type(value)


def test_numpy_values_assigned_by_a_recipe_class_and_nested_ones_are_python_numbers():
    class Data(ImageDatasetConfig):
        def __init__(self, **kwargs):
            self.load_kwargs(**kwargs)
            self.dataset_cls = "Digits"
            self.batch_size = np.int64(64)
            self.filter_classes = (np.int64(0), np.int64(5))
            super().__init__(**kwargs)

    data = Data(valid_size=np.float32(0.2))
    plain = ImageDatasetConfig(dataset_cls="Digits", batch_size=64, filter_classes=(0, 5), valid_size=0.2)
    assert data.get_key() == plain.get_key()
    assert type(data.batch_size) is int and [type(c) for c in data.filter_classes] == [int, int]
    assert BaselineTrainer().update(max_iter=np.int64(3)).max_iter == 3


@pytest.mark.parametrize("values, message", [
    ({"max_iter": 1.5}, "max_iter expects a int"),
    ({"max_iter": np.float64(2.0)}, "max_iter expects a int"),
    ({"max_iter": True}, "max_iter expects a int"),
    ({"max_iter": np.bool_(True)}, "max_iter expects a int"),
    ({"lr": True}, "lr expects a float"),
    ({"lr": "0.1"}, "lr expects a float"),
])
def test_what_is_really_wrong_is_still_refused(values, message):
    with pytest.raises(ValueError, match=message):
        ClassificationTrainerConfig(**values)


@pytest.mark.parametrize("seed", [1.5, True, np.bool_(True), np.float64(1.0), "1"])
def test_a_seed_that_is_no_integer_is_refused(seed):
    with pytest.raises(ValueError, match="seed must be an int"):
        Experiment(BaselineDataset(), BaselineModel(), BaselineTrainer(), seed=seed)
