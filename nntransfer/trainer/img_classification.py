"""The image classification trainer and ``classification_trainer``, the function the Trainer table calls."""

from __future__ import annotations

import functools
import itertools
import logging
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from nntransfer.configs.trainer.classification import ClassificationTrainerConfig
from nntransfer.dataset.info import data_info, normalization
from nntransfer.dataset.memory import MemoryLoader, MemoryView
from nntransfer.trainer.checks import check_trainer_config
from nntransfer.trainer.finite import check_fisher
from nntransfer.trainer.fisher import FISHER_PREFIX, diagonal_fisher
from nntransfer.trainer.main_loop_modules import get as get_module
from nntransfer.trainer.main_loop_modules import read_output
from nntransfer.trainer.main_loop_modules.noise_augmentation import apply_noise
from nntransfer.trainer.trainer import Trainer

logger = logging.getLogger(__name__)

_CONFIG_CLASSES: Dict[Tuple[type, ...], type] = {}


def trainer_config_from_dict(config: Union[Mapping[str, Any], ClassificationTrainerConfig]) -> ClassificationTrainerConfig:
    """The typed config of a table row: ``ClassificationTrainerConfig`` with the mixins of the listed
    main-loop modules (their ``config_mixin``), so every field is checked like in the original class."""
    if isinstance(config, ClassificationTrainerConfig):
        return config
    mixins = []
    for name in config.get("main_loop_modules", []):
        mixin = get_module(name).config_mixin
        if mixin is not None and mixin not in mixins:
            mixins.append(mixin)
    key = tuple(mixins)
    if key not in _CONFIG_CLASSES:
        name = "".join(m.__name__.replace("Mixin", "") for m in mixins) + "ClassificationTrainerConfig"
        _CONFIG_CLASSES[key] = type(name, key + (ClassificationTrainerConfig,), {"__module__": __name__})
    # strict: a field that neither the class nor a listed module's mixin declares is read by nothing (a module
    # declares what it reads in its mixin), so it is refused rather than carried
    return _CONFIG_CLASSES[key].from_dict(dict(config))


def _is_dropout(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.dropout._DropoutNd)


class ImgClassificationTrainer(Trainer):
    """Classification of images: losses by task (``loss_functions``), accuracy in percent, final
    evaluation on every test split (nested ones such as ``c_test[corruption][severity]`` too), under the
    noise levels of ``noise_test`` on the validation set, with batch norm in training mode and with MC
    dropout where configured; optionally the logits of the training set for the next transfer step."""

    statistics = ("loss", "accuracy")

    def __init__(self, model, dataloaders, seed, config, uid=None, cb=None, teacher_model=None, fisher=None) -> None:
        super().__init__(model, dataloaders, seed, config, uid=uid, cb=cb, teacher_model=teacher_model, fisher=fisher)
        self.mc_samples = 0

    # ------------------------------------------------------------------ batches

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> Any:
        if not self.mc_samples:
            return model(inputs)
        # MC dropout: log of the mean predicted probability over the samples
        probs = sum(F.softmax(read_output(model(inputs)).logits.float(), dim=1) for _ in range(self.mc_samples))
        return torch.log(probs / self.mc_samples + 1e-12)

    def task_loss(self, outputs: torch.Tensor, targets: torch.Tensor, task_key: str) -> torch.Tensor:
        if self.mc_samples:
            return F.nll_loss(outputs, targets)
        return super().task_loss(outputs, targets, task_key)

    def batch_statistics(self, outputs: torch.Tensor, targets: torch.Tensor, task_loss: torch.Tensor) -> torch.Tensor:
        labels = targets.argmax(1) if targets.dim() > 1 else targets
        correct = (outputs.argmax(1) == labels).sum()
        return torch.stack([task_loss.detach().float() * targets.shape[0], correct.float() * 100])

    def set_eval_mode(self) -> None:
        super().set_eval_mode()
        if self.eval_variant == "mc_dropout":
            for module in self.model.modules():
                if _is_dropout(module):
                    module.train()

    def evaluation_variants(self):
        return super().evaluation_variants() + (["mc_dropout"] if self.config.mc_dropout_samples else [])

    def evaluate(self, loaders, split, variant="plain", input_transform=None):
        self.mc_samples = self.config.mc_dropout_samples if variant == "mc_dropout" else 0
        try:
            return super().evaluate(loaders, split, variant, input_transform)
        finally:
            self.mc_samples = 0

    # ------------------------------------------------------------------ final evaluation

    def noise_transform(self, kind: str, level: float) -> Callable[[torch.Tensor], torch.Tensor]:
        """Test noise of one level, from a generator seeded anew for every level (the same noise every time)."""
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        mean, std = normalization(data_info(self.dataloaders), self.config.input_mean, self.config.input_std)
        return functools.partial(apply_noise, **{kind: float(level)}, mean=mean, data_std=std,
                                 pixel_range=tuple(self.config.pixel_range), generator=generator)

    def final_evaluation(self) -> Tuple[float, Dict[str, Any]]:
        """The base class's evaluation of every split, plus the validation set under ``noise_test``."""
        config = self.config
        if config.mc_dropout_samples and not any(_is_dropout(m) for m in self.model.modules()):
            logger.warning("mc_dropout_samples is set, but the model has no dropout layer")
        score, results = super().final_evaluation()
        if config.noise_test:
            results["validation_noise"] = {
                kind: {
                    level: self.evaluate(self.validation_loaders, "validation",
                                         input_transform=self.noise_transform(kind.replace("noise_", ""), level))
                    for level in levels
                }
                for kind, levels in config.noise_test.items()
            }
        return score, results

    # ------------------------------------------------------------------ transfer data

    def compute_transfer_data(self) -> Dict[str, np.ndarray]:
        """Logits of the trained model for every training example, in dataset order (main task), on
        the examples without augmentation when the loader offers them (``unaugmented_dataset``)."""
        loader = self.train_loaders[self.task_keys[0]]
        dataset = getattr(loader, "unaugmented_dataset", None) or loader.dataset
        if isinstance(dataset, MemoryView):  # in memory: sliced in order, transformed on the device
            ordered = MemoryLoader(dataset, loader.batch_size, torch.Generator()).set_device(self.device)
        else:
            ordered = DataLoader(dataset, batch_size=loader.batch_size or 128, shuffle=False,
                                 collate_fn=getattr(loader, "collate_fn", None), num_workers=0)
        self.model.eval()
        logits = []
        with torch.no_grad(), self.autocast():
            for batch in ordered:
                inputs = self.split_batch(batch)[0]
                logits.append(read_output(self.model(inputs)).logits.float().cpu())
        return {"logits": torch.cat(logits).numpy()}

    def compute_fisher(self) -> Dict[str, np.ndarray]:
        """The diagonal empirical Fisher information of the trained model on the training set (main task),
        as ``{"fisher/<parameter name>": array}`` (see ``nntransfer.trainer.fisher``); a fast dev run estimates
        it on its first batches."""
        loader = self.train_loaders[self.task_keys[0]]
        batches = (self.split_batch(batch)[:2] for batch in itertools.islice(loader, self.batch_limit or None))
        task = self.task_keys[0]
        fisher = diagonal_fisher(self.model, batches, lambda outputs, targets: self.task_loss(outputs, targets, task))
        check_fisher(fisher, "this step's", "nothing of this step is stored; train it with a lower learning rate")
        return {FISHER_PREFIX + name: value.cpu().numpy() for name, value in fisher.items()}

    def extra_output(self) -> Dict[str, Any]:
        handed_on: Dict[str, np.ndarray] = {}
        if self.config.compute_transfer_data:
            handed_on.update(self.compute_transfer_data())
        if self.config.compute_fisher:
            handed_on.update(self.compute_fisher())
        return {"transfer_data": handed_on} if handed_on else {}


def classification_trainer(
    model: nn.Module,
    dataloaders: Mapping[str, Any],
    seed: int,
    uid: Optional[Mapping[str, Any]] = None,
    cb: Optional[Callable[..., None]] = None,
    teacher_model: Optional[nn.Module] = None,
    fisher: Optional[Mapping[str, torch.Tensor]] = None,
    **config: Any,
) -> Tuple[float, Dict[str, Any], Dict[str, torch.Tensor]]:
    """nnfabrik's trainer function: trains ``model`` on ``dataloaders`` with the settings of
    ``ClassificationTrainerConfig(...).to_dict()`` (mixin fields included); ``cb`` is the checkpoint
    callback of the tables (None: ``checkpoint_dir`` or no checkpoints). ``teacher_model``: an earlier step's
    trained model for the main-loop modules that need one; ``fisher``: the Fisher information the previous
    step handed on (EWC).

    Returns ``(score, output, model_state)``: the final validation objective (with an empty validation
    set: that of the training set, evaluated as ``output["final"]["train"]``); ``{"tracker":
    AdvancedTracker state, "final": results of the final evaluation, "best_epoch", "epochs",
    ["transfer_data"]}``; the model's state dict on the CPU.
    """
    check_trainer_config(config)
    typed = trainer_config_from_dict(config)
    return ImgClassificationTrainer(model, dataloaders, seed, typed, uid=uid, cb=cb, teacher_model=teacher_model, fisher=fisher).train()


classification_trainer.check_config = check_trainer_config
