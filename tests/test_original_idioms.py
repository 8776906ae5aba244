"""Recipes written for the original nntransfer (sinzlab/nntransfer) run with only their import lines changed:
the ``load_kwargs`` config idiom, the original field names, ``student_model``, restrictions and updates of
experiments, a module's leftover ``experiments`` list, and the JSON methods."""

import json
import textwrap
import uuid
import warnings

import pytest

import nntransfer
from nntransfer.configs import (
    BaseConfig,
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Experiment,
    ImageDatasetConfig,
    KnowledgeDistillationMixin,
    TransferExperiment,
)
from nntransfer.recipes.loading import RecipeError, load_recipe

# ---------------------------------------------------------------------------- a recipe in the original's style

# An original recipe module (cf. sinzlab/orbit_transfer's recipes): only the import lines point at this package.
ORIGINAL_RECIPE = '''
from nntransfer.configs.base import Description
from nntransfer.configs.experiment import Experiment
from nntransfer.configs.transfer_experiment import TransferExperiment
from nntransfer.configs import ImageDatasetConfig as ImageDataset
from nntransfer.configs import ClassificationModelConfig as ClassificationModel
from nntransfer.configs import ClassificationTrainerConfig as Classification

transfer_experiments = {}


class BaselineDataset(ImageDataset):
    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.dataset_cls = "Digits"
        self.input_width = 8
        self.input_height = 8
        self.apply_augmentation = False
        self.train_data_mean = (0.3,)
        self.train_data_std = (0.4,)
        self.train_subset = 0.3
        self.batch_size = 64
        self.filter_classes = (0, 5)
        super().__init__(**kwargs)


class TeacherModel(ClassificationModel):
    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.type = "lenet300-100"
        self.input_width = 8
        self.input_height = 8
        super().__init__(**kwargs)


class StudentModel(ClassificationModel):
    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.type = "mlp"
        self.mlp_hidden_sizes = [32]
        super().__init__(**kwargs)


class BaselineTrainer(Classification):
    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.max_iter = 2
        self.threshold = 1e-5
        self.scheduler = "adaptive"
        self.optimizer_options = {"amsgrad": False, "lr": 0.003}
        self.main_objective = "accuracy"
        self.force_cpu = True
        super().__init__(**kwargs)


class TransferTrainer(BaselineTrainer):
    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.freeze_bn = "all"
        self.reset = ("readout",)
        super().__init__(**kwargs)


seed = 42
experiments = [
    Experiment(dataset=BaselineDataset(), model=TeacherModel(), trainer=BaselineTrainer(), seed=seed),
    Experiment(dataset=BaselineDataset(filter_classes=(5, 10)), model=TeacherModel(), trainer=TransferTrainer(),
               seed=seed),
]
experiments.append(
    Experiment(
        dataset=BaselineDataset(filter_classes=(5, 10)),
        model=TeacherModel(),
        trainer=BaselineTrainer(student_model=StudentModel().to_dict()),
        seed=seed,
    )
)
transfer_experiments[Description(name="pretrain -> transfer -> student", seed=seed)] = TransferExperiment(experiments)
# ``experiments`` is left over, as in the original recipes; its last entry cannot run alone
'''


def write_package(root, code, module="chains"):
    """A recipe package with a unique name (modules are cached by name) whose module ``module`` is ``code``."""
    folder = root / f"original_recipe_{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / f"{module}.py").write_text(textwrap.dedent(code))
    return folder


@pytest.mark.database
def test_original_recipe_runs_on_both_backends_with_the_same_scores(tables, tmp_path):
    folder = write_package(tmp_path, ORIGINAL_RECIPE)
    recipe = load_recipe(str(folder))
    assert len(recipe) == 1  # the leftover ``experiments`` list is not run
    (chain,) = recipe.transfer_experiments.values()
    data, teacher, trainer = chain[0].dataset, chain[0].model, chain[0].trainer
    assert (data.input_size, data.augment_crop, data.mean, data.std) == (8, False, (0.3,), (0.4,))
    assert teacher.input_size == [8, 8]  # (a field of its own, read by nothing, is refused: test_config_fields_read)
    assert (trainer.tolerance, trainer.scheduler, trainer.lr, trainer.optimizer_options) == (1e-5, "plateau", 0.003, {"amsgrad": False})
    assert (chain[1].trainer.freeze_bn, chain[1].trainer.reset, chain[1].trainer.device) == (True, ("readout",), "cpu")
    assert chain[2].trainer.student_model["type"] == "mlp"

    scores = {}
    for backend in ("local", "datajoint"):
        store = f"local:{tmp_path / 'work'}" if backend == "local" else f"datajoint:{tables.schema_name}"
        rows = nntransfer.run(str(folder), store=store, progress=False)
        assert [row.state for row in rows] == ["done"] * 3, (backend, rows)
        scores[backend] = [row.score for row in rows]
    # the tables store the score as a FLOAT column (six significant digits)
    assert scores["datajoint"] == pytest.approx(scores["local"], rel=1e-5, abs=0)
    assert all(0 < score <= 100 for score in scores["local"])

    from nntransfer.pipeline.local import LocalStore

    store = LocalStore(tmp_path / "work")
    assert store.load_weights(chain.step_key(1))["core.fc1.weight"].shape == (300, 64)  # the teacher
    assert store.load_weights(chain.step_key(2))["core.fc1.weight"].shape == (32, 64)  # its student


# ---------------------------------------------------------------------------- load_kwargs


class BaselineModel(ClassificationModelConfig):
    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.type = "lenet300-100"
        self.coreset_size = 200  # a new field
        self.dropout = 0.1
        super().__init__(**kwargs)


class WiderModel(BaselineModel):
    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.type = "mlp"
        self.coreset_size = 50
        super().__init__(**kwargs)


def test_load_kwargs_keywords_win_over_every_class():
    config = BaselineModel(type="mlp", coreset_size=3, dropout=0.0)
    assert (config.type, config.coreset_size, config.dropout) == ("mlp", 3, 0.0)
    assert BaselineModel(batch_norm=None).batch_norm is None  # an explicit None is a value too
    assert WiderModel(type="lenet5").type == "lenet5"


def test_load_kwargs_outer_subclass_wins_over_inner():
    config = WiderModel()
    assert (config.type, config.coreset_size, config.dropout) == ("mlp", 50, 0.1)
    assert BaselineModel().type == "lenet300-100"
    assert (config.options, config.readout_bias) == ({}, True)  # the library's defaults fill the rest


def test_declared_fields_are_hashed_and_reach_the_library_function():
    config = BaselineModel()
    assert config.to_dict()["coreset_size"] == 200
    assert BaselineModel(coreset_size=201).get_key() != config.get_key()
    assert BaselineModel.from_dict(config.to_dict()).get_key() == config.get_key()
    # the library's class takes exactly its own fields (built a BaselineModel before or not) ...
    with pytest.raises(ValueError, match="no field 'coreset_size'"):
        ClassificationModelConfig.from_dict(config.to_dict())
    type("KD", (KnowledgeDistillationMixin, ClassificationTrainerConfig), {})(kd_weight=0.3)
    with pytest.raises(ValueError, match="no field 'kd_weight'"):
        ClassificationTrainerConfig.from_dict(dict(ClassificationTrainerConfig().to_dict(), kd_weight=0.3))
    # ... and the model builder, which rebuilds it from the values it receives, carries the field along
    rebuilt = ClassificationModelConfig.from_dict(config.to_dict(), carry_unknown=True)
    assert rebuilt.coreset_size == 200 and rebuilt.get_key() == config.get_key()


def test_declared_field_reaches_the_model_builder():
    from nntransfer.dataset import img_dataset_loader
    from nntransfer.models import classification_model_builder

    data = img_dataset_loader(seed=1, **ImageDatasetConfig(train_subset=0.1).to_dict())
    model = classification_model_builder(data, seed=1, **BaselineModel(type="mlp", mlp_hidden_sizes=[7]).to_dict())
    assert model.core.fc1.out_features == 7


@pytest.mark.parametrize("config_cls", [BaselineModel, ClassificationModelConfig])
def test_misspelt_keyword_is_one_line_naming_the_closest_field(config_cls):
    with pytest.raises(ValueError) as err:
        config_cls(dropuot=0.2)
    assert str(err.value) == f"{config_cls.__name__} has no field 'dropuot'; did you mean 'dropout'?"
    with pytest.raises(ValueError, match=r"expects a float"):
        config_cls(dropout="0.2")  # the class's default still types the keyword


def test_misspelt_keyword_is_reported_before_derived_checks():
    from nntransfer.configs import RepresentationMatchingMixin

    class Matching(RepresentationMatchingMixin, ClassificationTrainerConfig):
        pass

    with pytest.raises(ValueError, match="no field 'rep_matching_layer'; did you mean 'rep_matching_layers'"):
        Matching(rep_matching_layer=["core"], rep_matching_noise_std={0.1: 1.0})


def test_a_mixin_in_front_of_an_original_style_class():
    class BaselineTrainer(ClassificationTrainerConfig):
        def __init__(self, **kwargs):
            self.load_kwargs(**kwargs)
            self.max_iter = 2
            super().__init__(**kwargs)

    class Distillation(KnowledgeDistillationMixin, BaselineTrainer):
        pass

    config = Distillation(kd_weight=0.7, max_iter=3)
    assert (config.kd_weight, config.max_iter, config.kd_temperature) == (0.7, 3, 4.0)
    assert config.main_loop_modules == ["KnowledgeDistillation"]
    with pytest.raises(ValueError, match="did you mean 'kd_weight'"):
        Distillation(kd_wieght=0.7)


def test_construction_assignment_semantics():
    class Inner(ClassificationTrainerConfig):
        def __init__(self, **kwargs):
            self.load_kwargs(**kwargs)
            self.scheduler = "cosine"
            self.grad_clip_norm = 1.0
            super().__init__(**kwargs)

    class Outer(Inner):
        def __init__(self, **kwargs):
            self.load_kwargs(**kwargs)
            self.scheduler = None  # None is "unset" for the classes it builds on, as in the original
            self.grad_clip_norm = 2.0
            self.max_iter = 5
            self.max_iter = 6  # a second assignment does not override the first
            super().__init__(**kwargs)

    config = Outer()
    assert (config.scheduler, config.grad_clip_norm, config.max_iter) == ("cosine", 2.0, 5)
    config.max_iter = 7  # after construction assignment is plain assignment
    config.update(grad_clip_norm=3.0)
    assert (config.max_iter, config.grad_clip_norm) == (7, 3.0)
    with pytest.raises(ValueError, match="did you mean 'max_iter'"):
        config.update(max_iters=1)


def test_an_unset_field_reads_as_none_while_an_original_style_class_is_built():
    class Normalised(ImageDatasetConfig):
        def __init__(self, **kwargs):
            self.load_kwargs(**kwargs)
            if not self.train_data_mean:  # the original's pattern: unset reads as None
                self.mean = (0.5,) if self.dataset_cls is None else (0.25,)
            super().__init__(**kwargs)

    assert Normalised().mean == (0.5,) and Normalised(dataset_cls="Digits").mean == (0.25,)
    with pytest.raises(AttributeError, match="no field 'train_data_mean'"):
        Normalised().train_data_mean  # noqa: B018  (after construction a missing field is an error again)
    with pytest.raises(AttributeError, match="no field 'dataset_clss'"):
        ImageDatasetConfig().dataset_clss  # noqa: B018


def test_a_field_declared_after_super_init_takes_its_keyword():
    class Late(ClassificationTrainerConfig):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.late = 1

    assert Late().late == 1 and Late(late=2).late == 2
    with pytest.raises(ValueError, match="no field 'lat'; did you mean 'late'"):
        Late(lat=2)


def test_load_kwargs_after_construction_is_update():
    config = BaselineModel()
    config.load_kwargs(dropout=0.3)
    assert config.dropout == 0.3
    with pytest.raises(ValueError, match="did you mean 'dropout'"):
        config.load_kwargs(dropot=0.3)


# ---------------------------------------------------------------------------- original field names


class OriginalStyleModel(ClassificationModelConfig):
    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        super().__init__(**kwargs)


ALIASES = [
    # config class, original spelling, today's spelling, the field the warning names
    (ImageDatasetConfig, dict(input_width=16, input_height=16), dict(input_size=16), "input_size"),
    (ClassificationModelConfig, dict(input_width=16, input_height=12), dict(input_size=[12, 16]), "input_size"),
    (ImageDatasetConfig, dict(apply_augmentation=True),
     dict(augment_crop=True, augment_flip=True, augment_rotation=True), "augment_crop"),
    (ImageDatasetConfig, dict(dataset_cls="MNIST", input_size=28, apply_augmentation=True),
     dict(dataset_cls="MNIST", input_size=28, augment_crop=True, augment_flip=True), "augment_crop"),  # no rotation
    (ImageDatasetConfig, dict(train_data_mean=(0.5,)), dict(mean=(0.5,)), "mean"),
    (ImageDatasetConfig, dict(train_data_std=(0.25,)), dict(std=(0.25,)), "std"),
    (ClassificationTrainerConfig, dict(threshold=1e-5), dict(tolerance=1e-5), "tolerance"),
    (ClassificationTrainerConfig, dict(scheduler="adaptive"),
     dict(scheduler="plateau", scheduler_options={"factor": 0.1, "patience": 10, "threshold": 1e-4, "min_lr": 1e-5}),
     "plateau"),
    (ClassificationTrainerConfig, dict(scheduler="adaptive", lr_decay=0.8, patience=3, threshold=0.01),
     dict(scheduler="plateau", lr_decay=0.8, patience=3, tolerance=0.01,
          scheduler_options={"factor": 0.8, "patience": 3, "threshold": 0.01, "min_lr": 1e-5}), "plateau"),
    (ClassificationTrainerConfig, dict(optimizer_options={"lr": 0.01, "amsgrad": True}),
     dict(lr=0.01, optimizer_options={"amsgrad": True}), "lr"),
    (ClassificationTrainerConfig, dict(freeze_bn="all"), dict(freeze_bn=True), "freeze_bn"),
    (ClassificationTrainerConfig, dict(reset="all"), dict(reset=["all"]), "reset"),
    (ClassificationTrainerConfig, dict(main_objective="loss", maximize=False),
     dict(objective="total_loss", maximize=False), "objective"),
]  # get_intermediate_rep: test_get_intermediate_rep_original_form_only_in_the_original_idiom


@pytest.mark.parametrize("config_cls, original, today, field", ALIASES, ids=[str(sorted(a[1])) for a in ALIASES])
def test_original_name_gives_the_same_key_and_warns_naming_todays_field(config_cls, original, today, field):
    with pytest.warns(DeprecationWarning, match=field):
        old = config_cls(**original)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        new = config_cls(**today)
    assert old.get_key() == new.get_key()
    assert old.to_dict() == new.to_dict()
    assert new.get_key() != config_cls().get_key()  # the alias changed something
    assert not set(original) - set(today) & set(old.to_dict())  # the original name is no field
    with pytest.warns(DeprecationWarning, match=field):  # update() and from_dict translate too
        assert config_cls().update(original).get_key() == new.get_key()


def test_force_cpu_means_device_cpu():
    with pytest.warns(DeprecationWarning, match="device='cpu'"):
        config = ClassificationTrainerConfig(force_cpu=True)
    assert config.runtime_options()["device"] == "cpu"
    assert config.get_key() == ClassificationTrainerConfig(device="cpu").get_key()  # runtime options: not hashed
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert ClassificationTrainerConfig(force_cpu=False).device == "auto"


def test_original_names_in_a_subclass_body_and_after_construction():
    class Trainer(ClassificationTrainerConfig):
        def __init__(self, **kwargs):
            self.load_kwargs(**kwargs)
            self.threshold = 1e-5
            self.optimizer_options = {"lr": 0.01}
            super().__init__(**kwargs)

    with pytest.warns(DeprecationWarning):
        config = Trainer()
        assert (config.tolerance, config.lr, config.optimizer_options) == (1e-5, 0.01, {})
        assert Trainer(tolerance=1e-3, lr=0.1).tolerance == 1e-3  # keywords win over the body's original names
        assert Trainer(tolerance=1e-3, lr=0.1).lr == 0.1
        config.threshold = 0.5  # plain assignment later translates too
    assert config.tolerance == 0.5 and "threshold" not in config.to_dict()


def test_original_and_todays_name_together_must_agree():
    with pytest.raises(ValueError, match="'tolerance' is given twice"), pytest.warns(DeprecationWarning):
        ClassificationTrainerConfig(threshold=1e-5, tolerance=1e-3)
    with pytest.raises(ValueError, match="'lr' is given twice"), pytest.warns(DeprecationWarning):
        ClassificationTrainerConfig(lr=0.1, optimizer_options={"lr": 0.01})
    with pytest.raises(ValueError, match="input_width .16. and input_height .12. differ"), pytest.warns(DeprecationWarning):
        ImageDatasetConfig(input_width=16, input_height=12)
    with pytest.raises(ValueError, match="main_objective"):
        ClassificationTrainerConfig(main_objective="los")


def test_get_intermediate_rep_original_form_only_in_the_original_idiom():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        today = ClassificationModelConfig(get_intermediate_rep={"hidden": "core.fc1"})
    assert today.get_intermediate_rep == {"hidden": "core.fc1"}
    with pytest.warns(DeprecationWarning, match="get_intermediate_rep"):
        original = OriginalStyleModel(get_intermediate_rep={"core.fc1": "hidden"})
    assert original.get_intermediate_rep == {"hidden": "core.fc1"} and original.get_key() == today.get_key()
    again = OriginalStyleModel.from_dict(original.to_dict())  # stored values are today's form: not reversed twice
    assert again.get_intermediate_rep == {"hidden": "core.fc1"} and again.get_key() == original.get_key()
    assert BaseConfig.from_json(original.to_json()).get_intermediate_rep == {"hidden": "core.fc1"}
    with pytest.raises(ValueError, match="gives the name 'x' to both"):
        OriginalStyleModel(get_intermediate_rep={"core.fc1": "x", "core.fc2": "x"})


def test_a_subclass_can_switch_an_alias_off():
    class OwnThreshold(ClassificationTrainerConfig):
        ALIASES = {"threshold": None}

        def __init__(self, **kwargs):
            self.threshold = 0.5  # this trainer's own field
            super().__init__(**kwargs)

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        config = OwnThreshold(threshold=0.7)
    assert config.threshold == 0.7 and config.tolerance == 1e-4


# ---------------------------------------------------------------------------- student_model


def test_student_model_as_config_or_dict_names_the_same_trainer():
    student = ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[16])
    as_object = ClassificationTrainerConfig(student_model=student)
    as_dict = ClassificationTrainerConfig(student_model=student.to_dict())  # what the original recipes wrote
    with_comment = ClassificationTrainerConfig(student_model=dict(student.to_dict(), comment="the original's to_dict"))
    assert as_object.student_model == student.to_dict()
    assert as_object.get_key() == as_dict.get_key() == with_comment.get_key()
    assert as_object.get_key() != ClassificationTrainerConfig().get_key()


# ---------------------------------------------------------------------------- restrictions, updates, comment


def experiment(comment, **trainer):
    return Experiment(ImageDatasetConfig(batch_size=32), ClassificationModelConfig(), ClassificationTrainerConfig(**trainer),
                      seed=1, comment=comment)


def test_restrictions_past_the_last_step_are_empty():
    chain = TransferExperiment([experiment("A"), experiment("B")])
    assert chain.get_restrictions(1) == dict(chain[1].get_key(), collapsed_history=chain.get_restrictions(1)["collapsed_history"])
    assert chain.get_restrictions(2) == {} and chain.get_restrictions(5) == {}
    levels = []
    level = 0
    while chain.get_restrictions(level):  # how the original's runner walks a chain
        levels.append(level)
        level += 1
    assert levels == [0, 1]


def test_experiment_restrictions_and_update():
    exp = experiment("A")
    assert exp.get_restrictions() == [exp.get_key()]
    before = exp.get_key()
    assert exp.update({"trainer": {"max_iter": 3}, "dataset": {"batch_size": 8}}) is exp
    assert (exp.trainer.max_iter, exp.dataset.batch_size) == (3, 8) and exp.get_key() != before
    with pytest.raises(ValueError, match="unknown part"):
        exp.update({"optimizer": {}})


def test_transfer_experiment_update_and_comment():
    base = experiment("A")
    chain = TransferExperiment([base, experiment("B")])
    assert chain.comment == "A -> B"
    key0, key1 = chain.step_key(0), chain.step_key(1)
    chain.update([{}, {"trainer": {"max_iter": 3}}])
    assert chain[1].trainer.max_iter == 3 and chain.step_key(0) == key0 and chain.step_key(1) != key1
    assert base.trainer.max_iter == 100  # the recipe's object (possibly in other chains) is untouched
    with pytest.raises(ValueError, match="first step's trainer sets data_transfer"):
        chain.update([{"trainer": {"data_transfer": True}}])
    assert chain[0].trainer.data_transfer is False and chain.step_key(0) == key0  # a refused update changes nothing
    with pytest.raises(ValueError, match="only 2 steps"):
        chain.update([{}, {}, {}])


# ---------------------------------------------------------------------------- leftover experiments list


def test_a_leftover_experiments_list_is_not_run(tmp_path):
    folder = write_package(tmp_path, """
        from nntransfer.configs import *

        def step(**trainer):
            return Experiment(ImageDatasetConfig(), ClassificationModelConfig(), ClassificationTrainerConfig(**trainer), seed=1)

        transfer_experiments = {}
        for lr in (0.1, 0.01):
            experiments = [step(compute_transfer_data=True)]
            experiments.append(step(data_transfer=True, lr=lr))  # receives the data: cannot run alone
            transfer_experiments[Description(f"lr={lr}", 1)] = TransferExperiment(experiments)
    """)
    recipe = load_recipe(str(folder))
    assert sorted(d.name for d in recipe.transfer_experiments) == ["lr=0.01", "lr=0.1"]
    assert all(len(chain) == 2 for chain in recipe.transfer_experiments.values())


def test_an_experiments_only_module_still_runs_its_list_and_names_a_step_that_cannot(tmp_path):
    good = write_package(tmp_path, """
        from nntransfer.configs import *
        experiments = [Experiment(ImageDatasetConfig(), ClassificationModelConfig(), ClassificationTrainerConfig(), seed=1)]
    """)
    assert len(load_recipe(str(good))) == 1
    bad = write_package(tmp_path, """
        from nntransfer.configs import *
        experiments = [Experiment(ImageDatasetConfig(), ClassificationModelConfig(),
                                  ClassificationTrainerConfig(data_transfer=True), seed=1)]
    """)
    with pytest.raises(RecipeError, match=r"experiments\[0\] cannot run alone: the first step's trainer sets data_transfer"):
        load_recipe(str(bad))


# ---------------------------------------------------------------------------- JSON methods


def test_json_methods_of_the_original(tmp_path):
    config = ImageDatasetConfig(dataset_kwargs={"levels": {0.1: 0.5, (1, 2): 3}}, filter_classes=(0, 5), comment="digits")
    text = config.to_json_string()
    assert text.endswith("\n") and json.loads(text)["comment"] == "digits"
    path = tmp_path / "data.json"
    config.to_json_file(path)
    for loaded in (BaseConfig.from_json_file(path), ImageDatasetConfig.from_json_file(path)):
        assert type(loaded) is ImageDatasetConfig and loaded.get_key() == config.get_key()
        assert loaded.dataset_kwargs == {"levels": {0.1: 0.5, (1, 2): 3}} and loaded.filter_classes == (0, 5)
    written = config.save(tmp_path)  # a folder: <folder>/<config_name>, as in the original
    assert written == tmp_path / "dataset" and BaseConfig.from_json_file(written).get_key() == config.get_key()
    config.save(tmp_path / "file.json")  # today's form: a file
    assert BaseConfig.load(tmp_path / "file.json").comment == "digits"


def test_a_flat_json_file_loads_with_its_class(tmp_path):
    path = tmp_path / "flat.json"
    path.write_text(json.dumps({"fn": ImageDatasetConfig.fn, "batch_size": 32, "input_width": 8, "input_height": 8,
                                "comment": "written by the original"}))
    with pytest.warns(DeprecationWarning, match="input_size"):
        loaded = ImageDatasetConfig.from_json_file(path)
    assert (loaded.batch_size, loaded.input_size, loaded.comment) == (32, 8, "written by the original")
    with pytest.raises(ValueError, match="no 'config_class'"):
        BaseConfig.from_json_file(path)


# ---------------------------------------------------------------------------- README


def test_readme_section_example_holds():
    import re
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Coming from sinzlab/nntransfer", 1)[1].split("\n## ", 1)[0]
    (example,) = re.findall(r"```python\n(.*?)```", section, re.S)
    namespace = {"ClassificationModelConfig": ClassificationModelConfig}
    with pytest.warns(DeprecationWarning, match="input_size"):
        exec(example, namespace)
        model = namespace["BaselineModel"](coreset_size=10)
    assert (model.type, model.input_size, model.coreset_size) == ("lenet300-100", [8, 8], 10)
    assert "input_width" in section and "| `threshold` | `tolerance` |" in section
