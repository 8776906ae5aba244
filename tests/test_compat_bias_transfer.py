"""``nntransfer.compat.bias_transfer``: the example of sinzlab/nntransfer_recipes
(``nntransfer_recipes/_2021_07_28_example/baselines.py``) runs with only its import line changed, and its
configs mean what the original's meant (what trains, with which loss, on which data).

The original values below come from sinzlab/nntransfer at the example's date (commit 78622fe, 2021-07-29)
and from bias_transfer as of July 2021 (its history lives in sinzlab/orbit_transfer, commit 4161108,
2021-07-12, before the package was renamed); each assertion names the file it comes from."""

import pickle
import warnings

import numpy as np
import pytest
import torch

from nntransfer.cli.main import main
from nntransfer.defaults import TASK_KEY

#: the example module, with ``from bias_transfer.configs import *`` changed and nothing else
RECIPE = '''\
from nntransfer.configs.base import Description
from nntransfer.configs.transfer_experiment import TransferExperiment
from nntransfer.configs.experiment import Experiment
from nntransfer.configs import *
from nntransfer.compat.bias_transfer.configs import *

transfer_experiments = {}
experiments = []
experiments.append(Experiment(dataset=ImageDatasetConfig(dataset_cls="CIFAR10"), model=ModelConfig(type="lenet5"),
                              trainer=TrainerConfig(comment=f"Baseline Trainer"), seed=42))
transfer_experiments[Description(name=f"Baseline Experiment", seed=42)] = TransferExperiment(experiments)
'''


def write_tiny_cifar10(root, per_batch=8, n_test=10):
    """CIFAR-10 in its on-disk format (``cifar-10-batches-py``: the pickled dicts ``data`` [n, 3072] uint8 in
    CHW order and ``labels``, as ``nntransfer.dataset.sources.read_cifar_batches`` reads them), tiny."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        entry = {"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
                 "labels": [int(c) for c in rng.integers(0, 10, size=n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [str(c) for c in range(10)]}, f)


@pytest.fixture
def recipe(tmp_path, monkeypatch):
    """The example module and the tiny CIFAR-10, found through the environment (the module is unchanged)."""
    data = tmp_path / "data"
    write_tiny_cifar10(data)
    monkeypatch.setenv("NNTRANSFER_DATA_DIR", str(data))
    monkeypatch.setenv("NNTRANSFER_NUM_WORKERS", "0")
    monkeypatch.setenv("NNTRANSFER_PIN_MEMORY", "0")
    monkeypatch.setenv("NNTRANSFER_DEVICE", "cpu")
    monkeypatch.setenv("NNTRANSFER_PROGRESS", "0")
    path = tmp_path / "baselines.py"
    path.write_text(RECIPE)
    return path


def test_the_example_checks_and_trains_on_both_stores(recipe, tmp_path, db_prefix):
    import nntransfer

    work = tmp_path / "work"
    args = ["run", str(recipe), "--workdir", str(work), "--quiet"]
    assert main(args + ["--dry-run"]) == 0
    assert main(args + ["--fast-dev-run"]) == 0
    # the whole chain, shrunk only by its data (40 training images): trains until early stopping
    assert main(args) == 0
    assert any(p.is_file() for p in work.rglob("*"))
    assert main(args + ["--dry-run"]) == 0  # now reused
    local = nntransfer.run(str(recipe), store=f"local:{work}", progress=False)
    tables = nntransfer.run(str(recipe), store=f"datajoint:{db_prefix}_bias_example", progress=False)
    assert [row.state for row in tables] == ["done"] * len(local)
    assert [row.score for row in tables] == pytest.approx([row.score for row in local], rel=1e-5)  # same numbers


def example_configs():
    from nntransfer.compat.bias_transfer.configs import ImageDatasetConfig, ModelConfig, TrainerConfig

    return (ImageDatasetConfig(dataset_cls="CIFAR10"), ModelConfig(type="lenet5"),
            TrainerConfig(comment="Baseline Trainer"))


def test_the_example_means_what_the_original_meant():
    dataset, model, trainer = example_configs()

    # --- on which data: nntransfer/configs/dataset/base.py and image.py (sinzlab/nntransfer), read by
    # bias_transfer/dataset/torchvision_loader.py (its get_transforms)
    assert dataset.fn == "nntransfer.dataset.img_dataset_loader"
    assert dataset.dataset_cls == "CIFAR10"
    assert dataset.batch_size == 128                     # DatasetConfig.batch_size
    assert dataset.valid_size == 0.1                     # DatasetConfig.valid_size
    assert dataset.shuffle is True                       # DatasetConfig.shuffle
    assert dataset.input_size == 32                      # input_width = input_height = 32
    # apply_augmentation=True: RandomCrop(32, padding=4), RandomHorizontalFlip, RandomRotation(15) (not MNIST)
    assert (dataset.augment_crop, dataset.crop_padding, dataset.augment_flip) == (True, 4, True)
    assert (dataset.augment_rotation, dataset.rotation_degrees) == (True, 15.0)
    # apply_normalization=True with data_mean_defaults["CIFAR10"] / data_std_defaults["CIFAR10"]
    assert dataset.apply_normalization is True
    assert dataset.mean == [0.49139968, 0.48215841, 0.44653091]
    assert dataset.std == [0.24703223, 0.24348513, 0.26158784]
    assert (dataset.apply_grayscale, dataset.convert_to_rgb, dataset.add_corrupted_test) == (False, False, False)
    assert dataset.filter_classes is None                # filter_classes = () (all classes)
    assert dataset.download is True                      # torchvision_loader: download=True
    assert dataset.data_dir == "./data/image_classification/torchvision/"  # ImageDatasetConfig.data_dir
    assert (dataset.num_workers, dataset.pin_memory) == (1, True)

    # --- what trains: bias_transfer/models/__init__.py classification_model_builder -> lenet_builder of
    # nntransfer/models/lenet.py (LeNet5: conv 3x3 6 maps, pool, conv 3x3 16 maps, pool, fc 120, 84, classes)
    assert model.fn == "nntransfer.compat.bias_transfer.models.classification_model_builder"
    assert (model.type, model.dropout, model.get_intermediate_rep) == ("lenet5", 0.0, {})  # ModelConfig
    from nntransfer.compat.bias_transfer.models import classification_model_builder

    net = classification_model_builder(_cifar_loaders(), seed=42, **model.to_dict())
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (3, 6, (3, 3), (0, 0)), (6, 16, (3, 3), (0, 0))]
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    # 32 -> conv 30 -> pool 15 -> conv 13 -> pool 6: 16 * 6 * 6 = 576 features
    assert [(fc.in_features, fc.out_features) for fc in linears] == [(576, 120), (120, 84), (84, 10)]
    assert not any(isinstance(m, (torch.nn.Dropout, torch.nn.BatchNorm2d)) for m in net.modules())  # dropout 0.0
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)

    # --- how it trains: nntransfer/configs/trainer/base.py (TrainerConfig, 2021-07-29) with
    # bias_transfer/configs/trainer/classification.py (maximize=True) and nntransfer/trainer/trainer.py
    assert trainer.fn == "nntransfer.trainer.classification_trainer"
    assert trainer.optimizer == "Adam"                               # optimizer
    assert trainer.lr == 0.0003                                      # optimizer_options["lr"]
    assert trainer.optimizer_options == {"amsgrad": False}           # optimizer_options["amsgrad"]
    # scheduler="manual": MultiStepLR(milestones=lr_milestones=(30, 60), gamma=lr_decay=0.8)
    assert trainer.scheduler == "multistep"
    assert trainer.scheduler_options == {"milestones": [30, 60], "gamma": 0.8}
    assert trainer.max_iter == 100                                   # max_iter (epochs)
    assert trainer.interval == 1                                     # interval
    # patience=10: early_stopping.py resets its counter to -1 at an improvement, so it stops after 11
    # validations without improvement; it counts any improvement (threshold only reaches "adaptive")
    assert (trainer.patience, trainer.tolerance) == (11, 0.0)
    assert trainer.lr_decay_steps == 0                               # lr_decay_steps=1: one round, no restore
    assert trainer.restore_best is True                              # restore_best
    assert (trainer.objective, trainer.maximize) == ("accuracy", True)  # tracker main objective; maximize
    assert trainer.loss_functions == {TASK_KEY: "CrossEntropyLoss"}  # loss_functions
    assert trainer.train_cycler == "round_robin"                     # train_cycler="LongCycler"
    assert trainer.main_loop_modules == []                           # [] + "ModelWrapper" (the forward pass)
    assert (trainer.lr_warmup, trainer.accumulate_grad_batches) == (0, 1)  # lr_warmup 0, loss_accum_batch_n None
    assert trainer.eval_with_bn_train is False                       # Classification.eval_with_bn_train
    assert (trainer.data_transfer, trainer.keep_checkpoints, trainer.show_epoch_progress) == (False, False, False)


def _cifar_loaders():
    """A data set function's output as the model builder reads it: a train loader of 3x32x32 images, 10 classes."""
    from torch.utils.data import DataLoader, TensorDataset

    images = torch.zeros(10, 3, 32, 32)
    labels = torch.arange(10)
    return {"train": {TASK_KEY: DataLoader(TensorDataset(images, labels), batch_size=5)}}


def test_original_fields_are_translated():
    from nntransfer.compat.bias_transfer.configs import ClassificationModel, ImageDatasetConfig, TrainerConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        adaptive = TrainerConfig(scheduler="adaptive", patience=5, lr_decay=0.5, threshold=0.01, lr_decay_steps=3,
                                 optimizer_options={"lr": 0.01, "amsgrad": True}, train_cycler="LongCycler",
                                 main_loop_modules=["ModelWrapper"], force_cpu=True)
        none = TrainerConfig(lr_milestones=())
        data = ImageDatasetConfig(dataset_cls="CIFAR100", apply_augmentation=False, filter_classes=())
        lc = ClassificationModel(type="lenet5", core_type="lc", dropout=0.5)
    assert adaptive.scheduler == "plateau"
    assert adaptive.scheduler_options == {"factor": 0.5, "patience": 5, "threshold": 0.01, "min_lr": 1e-5,
                                          "threshold_mode": "rel"}
    assert (adaptive.patience, adaptive.tolerance, adaptive.lr_decay_steps, adaptive.lr_decay) == (6, 0.0, 2, 1.0)
    assert (adaptive.lr, adaptive.optimizer_options) == (0.01, {"amsgrad": True})
    assert (adaptive.main_loop_modules, adaptive.device) == ([], "cpu")
    assert (none.scheduler, none.scheduler_options) == (None, {})  # MultiStepLR without milestones: constant
    assert data.mean == [0.5070751592371323, 0.48654887331495095, 0.4409178433670343]
    assert (data.augment_crop, data.augment_flip, data.augment_rotation) == (False, False, False)
    assert lc.options == {"core": "lc"}
    from nntransfer.compat.bias_transfer.models import classification_model_builder

    net = classification_model_builder(_cifar_loaders(), seed=1, **lc.to_dict())
    assert sum(isinstance(m, torch.nn.Dropout) for m in net.modules()) == 4  # after conv1, conv2, fc1, fc2
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    # the original's locally connected layers (nntransfer/models/lenet.py LocallyConnected2d): no bias, N(0, 1)
    weights = [p for n, p in net.named_parameters() if n.startswith("core.")]
    assert len(weights) == 2 and 0.8 < float(weights[0].detach().std()) < 1.2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        fc = ClassificationModel(type="lenet5", core_type="fc")
    net = classification_model_builder(_cifar_loaders(), seed=1, **fc.to_dict())
    # the original "fc" core: dense layers 3072 -> 15*15*6 -> 576, no pooling
    assert [(m.in_features, m.out_features) for m in net.modules() if isinstance(m, torch.nn.Linear)][:2] == [
        (3072, 1350), (1350, 576)]
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    # the library rebuilds its own class from the stored fields: same values, no original forms re-read
    from nntransfer.configs import ClassificationTrainerConfig

    assert ClassificationTrainerConfig.from_dict(adaptive.to_dict()).to_dict() == adaptive.to_dict()
    assert TrainerConfig.from_dict(adaptive.to_dict()).to_dict() == adaptive.to_dict()


@pytest.mark.parametrize("make, message", [
    (lambda c: c.TrainerConfig(verbose=True), "verbose=True cannot be kept here"),
    (lambda c: c.TrainerConfig(mtl=True), "mtl=True cannot be kept here"),
    (lambda c: c.TrainerConfig(lr_warmup=5), "optimizer steps"),
    (lambda c: c.TrainerConfig(train_cycler="ShortCycler"), "LongCycler"),
    (lambda c: c.TrainerConfig(interval=2), "once per validation"),
    (lambda c: c.ImageDatasetConfig(dataset_cls="MNIST"), "CIFAR10, CIFAR100, SVHN"),
    (lambda c: c.ImageDatasetConfig(input_width=28, input_height=28), "never resized"),
    (lambda c: c.ImageDatasetConfig(apply_noise={"std": 0.1}), "apply_noise"),
    (lambda c: c.ImageDatasetConfig(apply_grayscale=True), "no mean and std of CIFAR10 in gray"),
    (lambda c: c.ImageDatasetConfig(filter_classes=(0, 5)), "ClassesFilter"),
    (lambda c: c.ModelConfig(), "type='resnet50' cannot be kept here"),
    (lambda c: c.ModelConfig(type="lenet5", pretrained=True), "pretrained=True"),
    (lambda c: c.ModelConfig(type="lenet5", get_intermediate_rep={"conv1": "c1"}), "layer paths"),
    (lambda c: c.CIFAR10Model(), "CIFAR10Model cannot be kept here"),
    (lambda c: c.MNISTTransfer(), "MNISTTransfer cannot be kept here"),
])
def test_what_cannot_be_kept_is_refused_in_one_line(make, message):
    import nntransfer.compat.bias_transfer.configs as configs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(ValueError, match=message) as excinfo:
            make(configs)
    assert "\n" not in str(excinfo.value)


def test_original_defaults_given_explicitly_are_accepted():
    from nntransfer.compat.bias_transfer.configs import ImageDatasetConfig, ModelConfig, TrainerConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        trainer = TrainerConfig(verbose=False, mtl=False, loss_weighing=False, lr_milestones=(30, 60), lr_decay=0.8,
                                scheduler="manual", patience=10, threshold=0.0001, lr_decay_steps=1)
        dataset = ImageDatasetConfig(apply_noise={}, show_sample=False, input_width=32, input_height=32)
        model = ModelConfig(type="lenet5", core_type="conv", pretrained=False, add_buffer=())
    plain_dataset, plain_model, plain_trainer = example_configs()
    assert trainer.to_dict() == plain_trainer.to_dict()
    assert dataset.to_dict() == plain_dataset.to_dict()
    assert model.to_dict() == plain_model.to_dict()


def test_a_recipe_subclass_in_the_original_idiom():
    from nntransfer.compat.bias_transfer.configs import TrainerConfig

    class Longer(TrainerConfig):
        def __init__(self, **kwargs):
            self.load_kwargs(**kwargs)
            self.max_iter = 200
            self.lr_milestones = (100, 150)
            super().__init__(**kwargs)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        config = Longer(lr_decay=0.1)
    assert config.max_iter == 200
    assert config.scheduler_options == {"milestones": [100, 150], "gamma": 0.1}
