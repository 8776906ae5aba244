"""``TrainerConfig`` and ``Classification`` as the recipes of bias_transfer (July 2021) meant them: the
original nntransfer's ``TrainerConfig`` (``nntransfer/configs/trainer/base.py`` of sinzlab/nntransfer,
July 2021) with bias_transfer's ``Classification`` (``bias_transfer/configs/trainer/classification.py``),
trained by bias_transfer's image classification trainer on the original nntransfer's ``Trainer``
(``nntransfer/trainer/trainer.py``, ``nntransfer/trainer/utils/early_stopping.py``), mapped onto this
library's classification trainer."""

from typing import Any, Dict, Optional

from nntransfer.compat.bias_transfer.configs._fields import refused, translated
from nntransfer.configs.construction import STATE
from nntransfer.configs.original import Alias
from nntransfer.configs.trainer.classification import ClassificationTrainerConfig
from nntransfer.defaults import TASK_KEY

#: the original's learning-rate schedule settings, kept (beside the fields) to compose ``scheduler_options``
SCHEDULE_DEFAULTS = {
    "scheduler": "manual",
    "lr_milestones": (30, 60),
    "lr_decay": 0.8,
    "min_lr": 0.00001,
    "threshold": 0.0001,
    "threshold_mode": "rel",
    "patience": 10,
}
_SCHEDULE = "_bias_transfer_schedule"


def _schedule_setting(name: str) -> Alias:
    def convert(value: Any, config: Any, memory: Dict[str, Any]) -> Dict[str, Any]:
        kept = config.__dict__.setdefault(_SCHEDULE, {})
        if config.__dict__.get(STATE) is not None:
            kept.setdefault(name, value)
        else:
            kept[name] = value
        return {}

    return Alias("scheduler_options", convert=convert, finish=_compose_schedule, original_idiom=True,
                 hint=f"{name!r} is an original learning-rate schedule setting; here scheduler and scheduler_options")


def _compose_schedule(config: Any, owned: Dict[str, str]) -> None:
    """``scheduler`` and ``scheduler_options`` from the original settings (the original's
    ``Trainer.prepare_lr_schedule``): "manual" is ``MultiStepLR(milestones=lr_milestones, gamma=lr_decay)``,
    "adaptive" ``ReduceLROnPlateau(factor=lr_decay, patience, threshold, min_lr, threshold_mode)`` on the
    validation objective, None no schedule."""
    kept = {**SCHEDULE_DEFAULTS, **config.__dict__.get(_SCHEDULE, {})}
    kind = kept["scheduler"]
    if kind == "manual":
        milestones = list(kept["lr_milestones"] or ())
        scheduler, options = ("multistep", {"milestones": milestones, "gamma": kept["lr_decay"]}) if milestones else (None, {})
    elif kind == "adaptive":
        scheduler = "plateau"
        options = {"factor": kept["lr_decay"], "patience": kept["patience"], "threshold": kept["threshold"],
                   "min_lr": kept["min_lr"], "threshold_mode": kept["threshold_mode"]}
    elif kind in (None, ""):
        scheduler, options = None, {}
    else:
        raise ValueError(f"{type(config).__name__}: scheduler={kind!r} is none of the original's schedulers "
                         f"('manual', 'adaptive', None)")
    config.__dict__["scheduler"] = scheduler
    config.__dict__["scheduler_options"] = options


def _patience(value: Any, config: Any, memory: Dict[str, Any]) -> Dict[str, Any]:
    """The original early stopping set its counter to -1 at every improvement and stopped when it reached
    ``patience``: it stopped after patience + 1 validations without improvement; this library's stops after
    ``patience``. (The "adaptive" schedule's patience is the original value.)"""
    _schedule_setting("patience").convert(value, config, memory)
    return {"patience": value + 1}


def _lr_decay_steps(value: Any, config: Any, memory: Dict[str, Any]) -> Dict[str, Any]:
    """The original ran ``lr_decay_steps`` rounds of early stopping, restoring the best state between them
    without changing the learning rate (that was the scheduler's job): here ``lr_decay_steps - 1`` decays by
    a factor ``lr_decay`` of 1.0, each restoring the best state."""
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{type(config).__name__}: lr_decay_steps={value!r}: the original trained nothing with fewer "
                         f"than 1 round of early stopping")
    return {"lr_decay_steps": value - 1}


def _train_cycler(value: Any, config: Any, memory: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    if value == "LongCycler":
        return {"train_cycler": "round_robin"}
    raise ValueError(f"{type(config).__name__}: train_cycler={value!r} cannot be kept here: only the original "
                     f"LongCycler (round_robin here) is mapped")


def _main_loop_modules(value: Any, config: Any, memory: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The original appended ``ModelWrapper`` (the plain forward pass, this library's trainer itself)."""
    if isinstance(value, (list, tuple)) and "ModelWrapper" in value:
        return {"main_loop_modules": [name for name in value if name != "ModelWrapper"]}
    return None


def _lr_warmup(value: Any, config: Any, memory: Dict[str, Any]) -> Dict[str, Any]:
    if value in (0, None):
        return {"lr_warmup": 0}
    raise ValueError(f"{type(config).__name__}: lr_warmup={value!r} cannot be kept here: the original warmed up over "
                     f"{value} optimizer steps (pytorch_warmup), this library over epochs")


def _loss_accum(value: Any, config: Any, memory: Dict[str, Any]) -> Dict[str, Any]:
    if value in (None, 1):
        return {"accumulate_grad_batches": 1}
    raise ValueError(f"{type(config).__name__}: loss_accum_batch_n={value!r} cannot be kept here: the original's "
                     f"gradient accumulation is not mapped (only None is accepted)")


class TrainerConfig(ClassificationTrainerConfig):
    """The original ``TrainerConfig`` with bias_transfer's ``Classification`` (fields and defaults of July 2021).

    ===============================================  ==========================================================
    original field (default)                         here
    ===============================================  ==========================================================
    optimizer ("Adam")                               optimizer
    optimizer_options ({"amsgrad": False,            lr=0.0003, optimizer_options={"amsgrad": False}
    "lr": 0.0003})
    scheduler ("manual"), lr_milestones ((30, 60)),  scheduler="multistep", scheduler_options={"milestones":
    lr_decay (0.8)                                   [30, 60], "gamma": 0.8}; no milestones: scheduler None
    scheduler="adaptive" with lr_decay, patience,    scheduler="plateau", scheduler_options factor, patience,
    threshold (0.0001), min_lr (0.00001),            threshold, min_lr, threshold_mode
    threshold_mode ("rel")
    patience (10)                                    patience 11 (the original stopped after patience + 1
                                                     validations without improvement)
    threshold (early stopping)                       tolerance 0.0 (the original's early stopping counted any
                                                     improvement; threshold only reached the plateau schedule)
    max_iter (100), interval (1), restore_best       max_iter, interval, restore_best
    (True)
    lr_decay_steps (1)                               lr_decay_steps 0 (k rounds: k - 1 restores of the best state,
                                                     lr_decay 1.0: the learning rate is the schedule's)
    maximize (True), main objective accuracy         maximize, objective="accuracy"
    loss_functions ({"img_classification":           loss_functions
    "CrossEntropyLoss"})
    train_cycler ("LongCycler"), train_cycler_args   train_cycler="round_robin"; other cyclers and args refused
    ({})
    main_loop_modules ([] + "ModelWrapper")          main_loop_modules without "ModelWrapper"
    force_cpu (False)                                device="cpu" when True (runtime option)
    chkpt_options, keep_checkpoints (False),         the same (runtime options)
    show_epoch_progress (False)
    data_transfer (False), eval_with_bn_train        the same
    (False)
    lr_warmup (0)                                    refused unless 0 (the original counted optimizer steps)
    loss_accum_batch_n (None)                        refused unless None
    verbose (False), loss_weighing (False),          refused unless default: no counterpart here
    mtl (False)
    ===============================================  ==========================================================

    The multi-step schedule steps once per validation in the original and once per epoch here: with it,
    ``interval`` other than 1 is refused.
    """

    ALIASES = {
        "scheduler": _schedule_setting("scheduler"),
        "lr_milestones": _schedule_setting("lr_milestones"),
        "lr_decay": _schedule_setting("lr_decay"),
        "min_lr": _schedule_setting("min_lr"),
        "threshold": _schedule_setting("threshold"),
        "threshold_mode": _schedule_setting("threshold_mode"),
        "patience": Alias("patience", convert=_patience, finish=_compose_schedule, original_idiom=True,
                          hint="the original's patience counted one validation more; here patience = original + 1"),
        "lr_decay_steps": translated("lr_decay_steps", _lr_decay_steps, "lr_decay_steps",
                                     "the original's lr_decay_steps counted rounds; here decays = rounds - 1"),
        "train_cycler": translated("train_cycler", _train_cycler, "train_cycler",
                                   "the original's LongCycler is round_robin here"),
        "train_cycler_args": refused("train_cycler_args", {}, "the LongCycler took no arguments"),
        "main_loop_modules": translated("main_loop_modules", _main_loop_modules, "main_loop_modules",
                                        "ModelWrapper is the trainer's own forward pass here"),
        "lr_warmup": translated("lr_warmup", _lr_warmup, "lr_warmup", "lr_warmup counts epochs here"),
        "loss_accum_batch_n": translated("loss_accum_batch_n", _loss_accum, "accumulate_grad_batches",
                                         "loss_accum_batch_n is accumulate_grad_batches here"),
        "verbose": refused("verbose", False, "the schedulers print nothing here (logging reports the learning rate)"),
        "loss_weighing": refused("loss_weighing", False, "no learned loss weighing here"),
        "mtl": refused("mtl", False, "no multi-task data loaders here"),
    }

    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.set_defaults(
            optimizer="Adam",
            optimizer_options={"amsgrad": False},
            lr=0.0003,
            scheduler="multistep",
            scheduler_options={"milestones": [30, 60], "gamma": 0.8},
            patience=11,
            tolerance=0.0,
            max_iter=100,
            interval=1,
            restore_best=True,
            lr_decay_steps=0,
            lr_decay=1.0,
            early_stopping=True,
            objective="accuracy",
            maximize=True,
            loss_functions={TASK_KEY: "CrossEntropyLoss"},
            train_cycler="round_robin",
            main_loop_modules=[],
            data_transfer=False,
            eval_with_bn_train=False,
            keep_checkpoints=False,
            show_epoch_progress=False,
        )
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        if self.scheduler == "multistep" and self.interval != 1:
            raise ValueError(
                f"{type(self).__name__}: interval={self.interval!r} with the manual schedule cannot be kept here: the "
                f"original stepped it once per validation, this library once per epoch; use interval=1"
            )
        super().conditional_assignment()


class Classification(TrainerConfig):
    """bias_transfer's ``Classification`` trainer config (``maximize=True``, ``eval_with_bn_train=False`` on the
    original ``TrainerConfig``): the same as ``TrainerConfig`` here."""
