"""`EpochLoopConfig`: every setting the generic epoch loop (``nntransfer.trainer.Trainer``) reads."""

import math
from typing import Any, Dict, Optional

from nntransfer.configs.original import Alias
from nntransfer.configs.trainer.base import TrainerConfig

AMP_DTYPES = ("float16", "bfloat16")
#: the original nntransfer's ``min_lr`` of its "adaptive" (reduce-on-plateau) scheduler
ORIGINAL_MIN_LR = 1e-5


# The original nntransfer's names and forms (see ``EpochLoopConfig.ALIASES``). A converter returns
# the fields to set, or None when the value is already today's form.


def _adaptive(value: Any, config: Any, memory: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    return {"scheduler": "plateau"} if value == "adaptive" else None


def _adaptive_options(config: Any, owned: Dict[str, str]) -> None:
    """The original's "adaptive" scheduler: ReduceLROnPlateau with factor=lr_decay, patience=patience,
    threshold=threshold (today's tolerance) and min_lr=1e-5; options given in scheduler_options win."""
    if owned.get("scheduler") != "scheduler" or config.scheduler != "plateau":
        return
    options = dict(config.scheduler_options)
    for key, value in (("factor", config.lr_decay), ("patience", config.patience), ("threshold", config.tolerance),
                       ("min_lr", ORIGINAL_MIN_LR)):
        options.setdefault(key, value)
    config.__dict__["scheduler_options"] = options


def _lr_in_options(value: Any, config: Any, memory: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    if not isinstance(value, dict) or "lr" not in value:
        return None
    return {"optimizer_options": {k: v for k, v in value.items() if k != "lr"}, "lr": value["lr"]}


def _all_bn(value: Any, config: Any, memory: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    return {"freeze_bn": True} if value == "all" else None


def _reset_list(value: Any, config: Any, memory: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    return {"reset": [value]} if isinstance(value, str) else None


def _objective(value: Any, config: Any, memory: Dict[str, Any]) -> Dict[str, Any]:
    # the original image trainers tracked as "loss" the loss that trained, the main-loop modules' terms included
    if value in (None, "accuracy", "loss"):
        return {"objective": {"loss": "total_loss"}.get(value, value or "accuracy")}
    raise ValueError(f"{type(config).__name__}.main_objective (today's objective) must be 'accuracy' or 'loss', got {value!r}")


def _cpu(value: Any, config: Any, memory: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    return {"force_cpu": True, "device": "cpu"} if value is True else None


class EpochLoopConfig(TrainerConfig):
    """Settings of the generic epoch loop, ``nntransfer.trainer.Trainer`` (any supervised model whose batches are
    ``(inputs, targets[, extras])``); a task's trainer config derives from it and adds what its trainer reads
    (``ClassificationTrainerConfig``). Its own defaults suit a regression: ``objective="loss"``, minimised, and
    no loss function (name one per task in ``loss_functions``).

    Optimisation:
        optimizer: name of a ``torch.optim`` class, e.g. ``"Adam"``, ``"SGD"``.
        optimizer_options: keyword arguments of that class except the learning rate, e.g.
            ``{"weight_decay": 5e-4, "momentum": 0.9}``.
        lr: initial learning rate.
        loss_functions: task key -> name of a ``torch.nn`` loss, e.g. ``{"img_classification": "CrossEntropyLoss"}``.
        loss_options: keyword arguments for every loss, e.g. ``{"label_smoothing": 0.1}``.
        scheduler: ``None``, ``"multistep"`` (``scheduler_options`` needs ``milestones``, optional ``gamma``),
            ``"plateau"`` (reduce-on-plateau on the validation objective; ``factor``, ``patience``,
            ``threshold``, ``min_lr``) or ``"cosine"`` (cosine annealing over ``max_iter`` epochs).
            Schedulers count epochs after the warm-up.
        scheduler_options: keyword arguments of the scheduler.
        lr_warmup: epochs of linear learning-rate warm-up (per optimizer step, from lr/steps to lr); 0 = none.
        accumulate_grad_batches: average gradients over this many batches before each optimizer step (a
            shorter last group of the epoch is averaged over its own batches, like one larger batch).
        grad_clip_norm: clip the gradients to this total norm before each optimizer step (None: no clipping;
            under float16 AMP the gradients are unscaled first).
        amp: automatic mixed precision (float16 + gradient scaling on CUDA, bfloat16 autocast on the CPU).
        amp_dtype: ``None`` (the default for the device), ``"float16"`` or ``"bfloat16"``.

    Duration and early stopping (on the validation objective):
        max_iter: maximum number of epochs.
        objective: validation objective that decides early stopping and the score: a statistic the trainer
            tracks (``Trainer.statistics``; ``"loss"`` here, the task loss, also ``"accuracy"`` in
            classification), or ``"total_loss"``: the loss that trains (the task loss times its weight plus
            every weighted term of the main-loop modules), per example, minimised.
            With an empty validation set (``valid_size=0``) the training objective takes its place.
        maximize: whether the objective is maximised (accuracy) or minimised (loss).
        early_stopping: stop when the objective did not improve for ``patience`` validations.
        interval: validate every ``interval`` epochs (and after the last epoch).
        patience: validations without improvement before the learning rate decays or training stops.
        tolerance: an improvement must exceed this (objective units) to count.
        lr_decay_steps: how often the learning rate is decayed (model restored to the best state each time,
            unless ``restore_on_decay=False``) before training stops; 0 = stop at the first plateau.
        lr_decay: factor of each such decay.
        restore_on_decay: restore the best validated state at each such decay (``False``: decay only, e.g. where
            the objective does not measure the model being trained). Left out of ``to_dict`` (and so of the key)
            at its default.
        restore_best: load the best validated state when training ends.

    Tasks:
        train_cycler: ``"round_robin"`` (every task in turn until the longest loader is exhausted) or
            ``"main_task"`` (``train_cycler_options = {"main_task": key, "ratio": r}``: r batches of every
            other task per batch of the main task; an epoch is one pass over the main task).
        train_cycler_options: options of the cycler.

    Model manipulation (names are the selectors of ``nntransfer.models.utils``: "all", "core", "readout",
    or dotted parameter/module prefixes):
        freeze: parts whose parameters are not trained.
        reset: parts re-initialised before training (e.g. ``["readout"]`` for a new task).
        freeze_bn: keep batch-norm statistics fixed during training (batch norm in eval mode).

    Evaluation:
        eval_with_bn_train: the final evaluation also runs with batch norm in training mode (state restored after).

    Original nntransfer names and forms (translated, with a ``DeprecationWarning``): ``threshold``
    (-> ``tolerance``), ``main_objective`` (-> ``objective``), ``scheduler="adaptive"`` (-> ``"plateau"`` with
    ``scheduler_options`` factor=lr_decay, patience, threshold=tolerance, min_lr=1e-5, as the original's),
    ``optimizer_options={"lr": ...}`` (-> ``lr``), ``freeze_bn="all"`` (-> ``True``), ``reset="all"`` (-> ``["all"]``),
    ``force_cpu=True`` (-> ``device="cpu"``).

    Running (runtime options: not hashed, see ``nntransfer.configs.runtime``):
        device: ``"auto"`` (CUDA when available unless ``force_cpu``), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        checkpoint_dir: folder for checkpoints when no table callback is given ("" = none). A job restarted
            with the same folder and uid resumes from its last checkpoint.
        chkpt_options: ``save_every_n`` (epochs), ``keep_best_n``, ``keep_last_n``, ``keep_selection`` (epochs).
        tensorboard_dir: folder for TensorBoard event files of every tracked curve, one run per step
            (``<folder>/<name seed N step K comment> <short step id>``) with the step's settings as hyper-parameters,
            written each epoch ("" = none; needs ``nntransfer[tensorboard]``).
        mlflow_uri: an MLflow tracking URI (``sqlite:///mlflow.db``, ``http://host:5000``...): one MLflow run per
            step, named as its TensorBoard run, with its settings as params and every tracked curve as metrics
            ("" = none; needs ``nntransfer[mlflow]``; see ``nntransfer.trainer.mlflow_log``).
        show_progress: a progress bar over epochs; show_epoch_progress: one over the batches of each epoch.
        fast_dev_run: > 0: a check, not a run: one epoch of this many batches of training and of validation,
            this many batches of each test set, no checkpoints, TensorBoard or MLflow (``nntransfer run --fast-dev-run``;
            a store refuses to keep such a result).
    """

    #: the original nntransfer's names and forms (``nntransfer.configs.original``: translated before hashing,
    #: with a warning)
    ALIASES = {
        "threshold": "tolerance",
        "main_objective": Alias("objective", convert=_objective),
        "scheduler": Alias("scheduler", convert=_adaptive, finish=_adaptive_options,
                           hint="scheduler='adaptive' is the original nntransfer's name; use scheduler='plateau' "
                                "(scheduler_options factor, patience, threshold and min_lr as the original's)"),
        "optimizer_options": Alias("lr", convert=_lr_in_options,
                                   hint="the learning rate in optimizer_options is the original nntransfer's form; "
                                        "use lr=..."),
        "freeze_bn": Alias("freeze_bn", convert=_all_bn,
                           hint="freeze_bn='all' is the original nntransfer's form; use freeze_bn=True"),
        "reset": Alias("reset", convert=_reset_list,
                       hint="reset={value!r} (a string) is the original nntransfer's form; use reset=[{value!r}]"),
        "force_cpu": Alias("device", convert=_cpu,
                           hint="force_cpu=True is the original nntransfer's switch; use device='cpu'"),
    }

    def __init__(self, **kwargs):
        self.set_defaults(
            # optimisation
            optimizer="Adam",
            optimizer_options={"DEFAULT EMPTY": True},
            lr=0.001,
            loss_functions={"DEFAULT EMPTY": True},
            loss_options={"DEFAULT EMPTY": True},
            scheduler=None,
            scheduler_options={"DEFAULT EMPTY": True},
            lr_warmup=0,
            accumulate_grad_batches=1,
            grad_clip_norm=None,
            amp=False,
            amp_dtype=None,
            # duration and early stopping
            max_iter=100,
            objective="loss",
            maximize=False,
            early_stopping=True,
            interval=1,
            patience=10,
            tolerance=1e-4,
            lr_decay_steps=0,
            lr_decay=0.1,
            restore_on_decay=True,
            restore_best=True,
            # tasks
            train_cycler="round_robin",
            train_cycler_options={"DEFAULT EMPTY": True},
            # model manipulation
            freeze=[],
            reset=[],
            freeze_bn=False,
            # evaluation
            eval_with_bn_train=False,
            # running
            device="auto",
            checkpoint_dir="",
            tensorboard_dir="",
            mlflow_uri="",
            chkpt_options={"save_every_n": 1, "keep_best_n": 1, "keep_last_n": 1, "keep_selection": ()},
            show_progress=True,
            show_epoch_progress=False,
            fast_dev_run=0,
        )
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        self._validate()

    def to_dict(self):
        """All fields, except ``restore_on_decay`` at its default (``True``): the keys of configs from before the
        field existed stay as they were."""
        values = super().to_dict()
        if values.get("restore_on_decay") is True:
            del values["restore_on_decay"]
        return values

    def _validate(self) -> None:
        name = type(self).__name__
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"{name}.lr must be a positive finite number, got {self.lr!r}")
        if "lr" in self.optimizer_options:
            raise ValueError(f"{name}: set the learning rate with lr=..., not optimizer_options['lr']")
        if self.grad_clip_norm is not None and not (isinstance(self.grad_clip_norm, (int, float)) and self.grad_clip_norm > 0):
            raise ValueError(f"{name}.grad_clip_norm must be None or a positive number, got {self.grad_clip_norm!r}")
        if self.scheduler == "multistep" and "milestones" not in self.scheduler_options:
            raise ValueError(f"{name}: scheduler 'multistep' needs scheduler_options={{'milestones': [epochs...]}}")
        if not isinstance(self.objective, str) or not self.objective:
            raise ValueError(f"{name}.objective must name a statistic the trainer tracks, e.g. 'loss', got {self.objective!r}")
        if self.objective in ("loss", "total_loss") and self.maximize:
            raise ValueError(f"{name}: the objective {self.objective!r} is minimised; set maximize=False")
        if self.amp_dtype is not None and self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"{name}.amp_dtype must be None or one of {AMP_DTYPES}, got {self.amp_dtype!r}")
        for field in ("max_iter", "interval", "accumulate_grad_batches"):
            if getattr(self, field) < 1:
                raise ValueError(f"{name}.{field} must be at least 1, got {getattr(self, field)!r}")
        for field in ("patience", "lr_warmup", "lr_decay_steps"):
            if getattr(self, field) < 0:
                raise ValueError(f"{name}.{field} must not be negative, got {getattr(self, field)!r}")
        unknown = set(self.chkpt_options) - {"save_every_n", "keep_best_n", "keep_last_n", "keep_selection"}
        if unknown:
            raise ValueError(
                f"{name}.chkpt_options knows save_every_n, keep_best_n, keep_last_n, keep_selection; got {sorted(unknown)}"
            )
