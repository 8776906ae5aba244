"""BaseConfig semantics: defaults, overrides, errors, keys, JSON, and pinned hashes."""

import json

import pytest

from nntransfer.configs import (
    BaseConfig,
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    DatasetConfig,
    ImageDatasetConfig,
)
from nntransfer.configs.base import make_hash


class ToyDatasetConfig(DatasetConfig):
    fn = "nntransfer.dataset.img_dataset_loader"

    def __init__(self, **kwargs):
        self.noise_levels = {"DEFAULT EMPTY": True, 0.1: 0.5}
        self.crop = (4, 4)
        self.learning_rate = 0.1
        self.epochs = 3
        self.name = "toy"
        self.comment = "toy data"
        super().__init__(**kwargs)


class DerivedConfig(ToyDatasetConfig):
    def __init__(self, **kwargs):
        self.scaled_epochs = None
        super().__init__(**kwargs)

    def conditional_assignment(self):
        self.scaled_epochs = self.epochs * 2


def test_defaults_and_keyword_overrides():
    config = ToyDatasetConfig(batch_size=7)
    assert config.batch_size == 7
    assert config.epochs == 3
    assert config.noise_levels == {}  # "DEFAULT EMPTY" turns into {}
    assert ToyDatasetConfig(noise_levels={0.2: 1.0}).noise_levels == {0.2: 1.0}


def test_misspelt_keyword_names_closest_field():
    with pytest.raises(ValueError, match=r"no field 'bach_size'; did you mean 'batch_size'"):
        ToyDatasetConfig(bach_size=3)


def test_missing_attribute_raises_attribute_error():
    config = ToyDatasetConfig()
    with pytest.raises(AttributeError, match="epochs"):
        config.epochz  # noqa: B018
    assert not hasattr(config, "no_such_field")


def test_type_validation():
    with pytest.raises(ValueError, match="expects a int"):
        ToyDatasetConfig(epochs="3")
    with pytest.raises(ValueError, match="expects a str"):
        ToyDatasetConfig(name=3)
    assert ToyDatasetConfig(learning_rate=1).learning_rate == 1  # ints are valid floats


def test_to_dict_includes_fn_excludes_comment():
    d = ToyDatasetConfig().to_dict()
    assert d["fn"] == "nntransfer.dataset.img_dataset_loader"
    assert "comment" not in d
    assert ToyDatasetConfig(comment="other").get_key() == ToyDatasetConfig().get_key()


def test_get_key_uses_nnfabrik_make_hash():
    config = ToyDatasetConfig()
    assert config.get_key() == {
        "dataset_hash": make_hash(config.to_dict()),
        "dataset_fn": "nntransfer.dataset.img_dataset_loader",
    }
    assert ToyDatasetConfig(epochs=4).get_key() != config.get_key()


def test_update_and_conditional_assignment():
    config = DerivedConfig(epochs=5)
    assert config.scaled_epochs == 10
    config.update(epochs=6)
    assert config.scaled_epochs == 12
    config.update({"batch_size": 2})
    assert config.batch_size == 2
    with pytest.raises(ValueError, match="did you mean 'epochs'"):
        config.update(epoch=1)


def test_from_dict_round_trip():
    config = DerivedConfig(noise_levels={0.1: 0.5, (1, 2): 3}, epochs=2)
    again = DerivedConfig.from_dict(config.to_dict())
    assert again.to_dict() == config.to_dict()
    assert again.get_key() == config.get_key()
    with pytest.raises(ValueError, match="no field"):
        DerivedConfig.from_dict(dict(config.to_dict(), surplus=1))


def test_json_round_trip_with_float_and_tuple_keys(tmp_path):
    config = ToyDatasetConfig(noise_levels={0.1: 0.5, 0.25: (1, 2), (3, 4): {"x": 1.5}}, crop=(2, 3))
    path = tmp_path / "config.json"
    config.save(path)
    text = path.read_text()
    assert "eval" not in text
    json.loads(text)  # plain JSON
    loaded = BaseConfig.load(path)  # the class is recorded in the file
    assert type(loaded) is ToyDatasetConfig
    assert loaded.noise_levels == {0.1: 0.5, 0.25: (1, 2), (3, 4): {"x": 1.5}}
    assert loaded.crop == (2, 3)
    assert loaded.comment == "toy data"
    assert loaded.get_key() == config.get_key()


def test_configs_are_independent_copies():
    shared = {"a": [1]}
    config = ToyDatasetConfig(noise_levels=shared)
    shared["a"].append(2)
    assert config.noise_levels == {"a": [1]}


# Golden values: a change to hashing or to a default renames every stored experiment. If one of these
# fails on purpose, the change needs a migration note, not just new numbers.
def test_golden_hash_of_plain_values():
    assert make_hash({"a": 1, "b": [1, 2], "c": {0.5: "x"}}) == make_hash({"c": {0.5: "x"}, "b": (1, 2), "a": 1})
    assert make_hash({"batch_size": 64, "fn": "x"}) == "2fc8936b8c6f4a8c045087ee9e477e20"


def test_golden_toy_config_hash():
    # changed in 0.2.0: num_workers, pin_memory and data_dir are runtime options, no longer hashed
    assert ToyDatasetConfig().get_key()["dataset_hash"] == "a179198bf772d6befd712715b91cde55"


@pytest.mark.parametrize(
    "config_cls, prefix",
    [(ImageDatasetConfig, "dataset"), (ClassificationModelConfig, "model"), (ClassificationTrainerConfig, "trainer")],
)
def test_concrete_configs_round_trip(config_cls, prefix, tmp_path):
    config = config_cls()
    assert config.config_name == prefix
    assert config.fn.startswith("nntransfer.")
    assert config_cls.from_dict(config.to_dict()).get_key() == config.get_key()
    config.save(tmp_path / "c.json")
    assert BaseConfig.load(tmp_path / "c.json").get_key() == config.get_key()


def test_subclass_defaults_survive_library_defaults():
    from nntransfer.configs import NoiseAugmentationMixin

    class ShortTraining(NoiseAugmentationMixin, ClassificationTrainerConfig):
        def __init__(self, **kwargs):
            self.max_iter = 5  # the recipe's default, set before the library's
            self.noise_std = {0.1: 1.0}
            super().__init__(**kwargs)

    config = ShortTraining()
    assert config.max_iter == 5 and config.noise_std == {0.1: 1.0}
    assert config.main_loop_modules.count("NoiseAugmentation") == 1
    config.update(lr=0.01)  # conditional assignment runs again without appending twice
    assert config.main_loop_modules.count("NoiseAugmentation") == 1
    assert ShortTraining(max_iter=7).max_iter == 7
    assert ShortTraining.from_dict(config.to_dict()).get_key() == config.get_key()


@pytest.mark.parametrize(
    "config_cls, expected",
    [
        # 0.2.0: runtime options (device, data folder, loader workers, progress bars, checkpoint folder and
        # retention) left the hash; the dataset config gained the field test_transforms; see CHANGELOG.md
        (ImageDatasetConfig, "1248f23cc6dd2b9ce22cda3d96b6537c"),
        # 0.5.0: a model type's own hyper-parameters moved into ``options`` (only what a config sets is hashed)
        (ClassificationModelConfig, "9e8d5d420096034a561d5c8a192e2e68"),
        # 0.3.0: the trainer config gained start_from_previous, teacher, student_model and compute_fisher
        (ClassificationTrainerConfig, "019489f15271c9aff3e7e12ee83dd0ed"),
    ],
)
def test_golden_default_config_hashes(config_cls, expected):
    # Changing a default or adding a field renames every stored experiment that uses these configs.
    # Update these values only together with a note in the changelog of the release.
    assert config_cls().get_key()[f"{config_cls.config_name}_hash"] == expected


# ---------------------------------------------------------------------------- plain data, one codec


def test_configs_import_nothing_heavy():
    import subprocess
    import sys

    code = (
        "import sys, nntransfer.configs; "
        "bad = {'datajoint', 'torch', 'nnfabrik', 'nntransfer.tables', 'nntransfer.trainer', 'nntransfer.dataset', "
        "'nntransfer.models', 'nntransfer.pipeline'} & set(sys.modules); assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------- no process state


RECIPE_CLASS = """
from nntransfer.configs import ClassificationModelConfig

class BaselineModel(ClassificationModelConfig):  # a recipe's subclass with a field of its own
    def __init__(self, **kwargs):
        self.coreset_size = 200
        super().__init__(**kwargs)
"""


def test_from_dict_accepts_the_same_before_and_after_a_subclass_was_built_in_a_fresh_process():
    """A worker imports the recipe but never builds its class (another process inserted the row): the
    library's class refuses the recipe's field and carries it when asked, the same before and after."""
    import subprocess
    import sys

    code = RECIPE_CLASS + """
import json, sys
from nntransfer.configs import codec

row = codec.loads(sys.argv[1])
seen = []
for attempt in ("before", "after"):
    try:
        ClassificationModelConfig.from_dict(row)
        seen.append("accepted")
    except ValueError as err:
        seen.append(str(err))
    carried = ClassificationModelConfig.from_dict(row, carry_unknown=True)
    seen.append([carried.coreset_size, carried.get_key()["model_hash"]])
    BaselineModel()  # from now on the process has built the recipe's class
print(json.dumps(seen))
"""
    from nntransfer.configs import codec

    namespace: dict = {}
    exec(RECIPE_CLASS, namespace)
    row = namespace["BaselineModel"](type="mlp", options={"hidden_sizes": [3]}).to_dict()
    out = subprocess.run([sys.executable, "-c", code, codec.dumps(row)], check=True, capture_output=True, text=True)
    refused, carried, refused_again, carried_again = json.loads(out.stdout.strip().splitlines()[-1])
    assert refused == refused_again and refused.startswith("ClassificationModelConfig has no field 'coreset_size'")
    assert carried == carried_again == [200, make_hash(row)]


def test_the_model_builder_takes_a_row_of_a_recipe_subclass_never_built_in_this_process():
    import uuid

    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from nntransfer.dataset.info import DataInfo, DataLoaders
    from nntransfer.models import classification_model_builder

    field = f"coreset_{uuid.uuid4().hex[:8]}"  # a field no config of this process has had
    row = dict(ClassificationModelConfig(type="mlp", options={"hidden_sizes": [3]}).to_dict(), **{field: 200})
    loader = DataLoader(TensorDataset(torch.zeros(4, 1, 8), torch.arange(4) % 2), batch_size=2)
    loaders = DataLoaders({"train": {"img_classification": loader}}, DataInfo(input_shape=(1, 8), n_classes=2))
    model = classification_model_builder(loaders, seed=1, **row)
    assert model.core.fc1.out_features == 3


def test_add_to_table_is_installed_by_the_tables_and_configs_never_import_them():
    import ast
    import subprocess
    import sys
    from pathlib import Path

    import nntransfer.configs

    for path in Path(nntransfer.configs.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[:2] == ["nntransfer", "tables"] for n in names), f"{path} imports the tables"
    code = (
        "from nntransfer.configs import ClassificationModelConfig, Experiment, ImageDatasetConfig, ClassificationTrainerConfig\n"
        "for call in (lambda: ClassificationModelConfig().add_to_table(), lambda: Experiment(ImageDatasetConfig(), "
        "ClassificationModelConfig(), ClassificationTrainerConfig(), seed=1).add_to_table()):\n"
        "    try:\n"
        "        call()\n"
        "    except RuntimeError as err:\n"
        "        print(err)\n"
        "import nntransfer.tables\n"
        "from nntransfer.configs.table_writer import table_writer\n"
        "print(type(table_writer()).__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.splitlines()
    assert len(out) == 3 and out[0] == out[1] and out[0].startswith("add_to_table writes to the DataJoint tables: import nntransfer.tables first")
    assert out[2] == "nntransfer.tables"


def test_model_options_round_trip_and_the_keywords_of_0_4_set_them():
    explicit = ClassificationModelConfig(type="mlp", options={"hidden_sizes": [64], "core_bias": False})
    with pytest.warns(DeprecationWarning, match=r"'mlp_hidden_sizes' is an option of mlp since 0.5.0; use options="):
        keywords = ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[64], core_bias=False)
    assert keywords.options == explicit.options and keywords.get_key() == explicit.get_key()
    assert "mlp_hidden_sizes" not in keywords.to_dict() and "core_bias" not in keywords.to_dict()
    assert ClassificationModelConfig.from_dict(explicit.to_dict()).get_key() == explicit.get_key()
    assert BaseConfig.from_json(explicit.to_json()).options == {"hidden_sizes": [64], "core_bias": False}
    with pytest.warns(DeprecationWarning):
        keywords.update(core_bias=True)  # adds to the options the config has
    assert keywords.options == {"hidden_sizes": [64], "core_bias": True}
    with pytest.raises(ValueError, match=r"'options' is given twice, as 'options' and by its original name 'core_bias'"):
        ClassificationModelConfig(type="mlp", options={"hidden_sizes": [64]}, core_bias=False)
    # only what a config sets is hashed: a type's options leave the others' keys alone
    assert ClassificationModelConfig().options == {}
    assert "options" in ClassificationModelConfig().to_dict()


HASH_VALUES = [
    {"a": 1, "b": [1, 2.5, None], "c": {"nested": {"x": (1, 2), 0.5: True}}},
    {(0.2, 0.4): 0.25, 0.1: 0.5, None: 0.25},
    [1, 2.0, "3", None, True, False, (4, [5, {"six": 6}])],
    (),
    {},
    "",
    "string",
    0,
    -1,
    1e-12,
    float("inf"),
    3.0,
    True,
    None,
    {"DEFAULT EMPTY": True},
    {1: "int key", "1": "str key"},
    ImageDatasetConfig().to_dict(),
    ClassificationTrainerConfig(noise_test={"noise_std": [0.1, 0.2]}).to_dict(),
]


@pytest.mark.parametrize("value", HASH_VALUES, ids=range(len(HASH_VALUES)))
def test_make_hash_is_bit_identical_to_nnfabrik(value):
    from collections import OrderedDict

    from nntransfer.tables import compat

    compat.apply()  # nnfabrik 0.2.1 imports collections.Mapping
    from nnfabrik.utility.dj_helpers import make_hash as nnfabrik_make_hash

    assert make_hash(value) == nnfabrik_make_hash(value)
    if isinstance(value, dict):
        ordered = OrderedDict(sorted(value.items(), key=lambda kv: str(kv[0]), reverse=True))
        assert make_hash(ordered) == nnfabrik_make_hash(ordered)


def test_runtime_options_are_not_hashed():
    base = ImageDatasetConfig()
    moved = ImageDatasetConfig(data_dir="/elsewhere", num_workers=4, pin_memory=True)
    assert moved.get_key() == base.get_key()
    assert moved.runtime_options() == {"num_workers": 4, "pin_memory": True, "data_dir": "/elsewhere"}
    assert "data_dir" not in moved.to_dict()
    trainer = ClassificationTrainerConfig(device="cpu", show_progress=False, checkpoint_dir="/tmp/c", keep_checkpoints=True)
    assert trainer.get_key() == ClassificationTrainerConfig().get_key()
    assert ClassificationTrainerConfig(max_iter=3).get_key() != ClassificationTrainerConfig().get_key()
    # runtime options survive JSON and from_dict
    again = BaseConfig.from_json(moved.to_json())
    assert again.runtime_options() == moved.runtime_options() and again.get_key() == moved.get_key()
    with pytest.raises(ValueError, match="did you mean 'data_dir'"):
        ImageDatasetConfig(data_dirr="/x")


def test_codec_round_trips_every_key_kind():
    from nntransfer.configs import codec

    value = {
        "plain": {"a": [1, 2]},
        "tuple keys": {(0.2, 0.4): 0.25, (1, (2, 3)): "nested"},
        "float keys": {0.1: 0.5, 1.0: 2},
        "none key": {None: 1, "x": None},
        "tuple": (1, (2, 3)),
        "markers": {"__items__": 1},
    }
    assert codec.loads(codec.dumps(value)) == value
    import numpy as np

    assert codec.loads(codec.dumps({"array": np.arange(3), "scalar": np.float32(0.5)})) == {"array": [0, 1, 2], "scalar": 0.5}


def test_config_file_must_name_a_config_class(tmp_path):
    path = tmp_path / "evil.json"
    path.write_text(json.dumps({"config_class": "os.system", "fields": {"fn": "x"}}))
    with pytest.raises(ValueError, match="unknown config class 'os.system'"):
        BaseConfig.load(path)
    path.write_text(json.dumps({"config_class": "nntransfer.configs.codec.make_hash", "fields": {}}))
    with pytest.raises(ValueError, match="not a config class"):
        BaseConfig.load(path)
