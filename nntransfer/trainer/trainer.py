"""`Trainer`: the generic epoch loop with main-loop modules, early stopping, checkpoints and resume.

The base class trains any supervised model whose batches are ``(inputs, targets[, extras])`` with the
configured loss functions and tracks the loss and every loss term the main-loop modules add; a subclass
adds what its task needs (statistics such as accuracy, evaluation variants, outputs for the next transfer
step). The events of the loop and the hooks of the main-loop modules are drawn in
``nntransfer.trainer.main_loop_modules.base``.

One run (``Trainer.train``)::

    seed everything; build the tracker; wrap the student and the teacher to return the layers the
        modules ask for; build the modules (on the model before reset); reset, freeze; optimizer,
        scheduler, early stopping
    resume from the last checkpoint if there is one (model, optimizer, scheduler, tracker,
        early-stopping counters, modules, RNG state)
    for epoch in (resumed epoch + 1) .. max_iter:
        run_epoch("Training")                       # + warm-up, accumulation, AMP; log: loss and every term
        a non-finite training loss or weights stop the step (``finite.TrainingDiverged``): nothing is returned
        if epoch % interval == 0 or epoch == max_iter:
            score = run_epoch("Validation")         # empty validation set: the epoch's training objective
            early stopping: improved | wait | decay (restore best, lr *= lr_decay) | stop
        step the scheduler; save a checkpoint (an epoch without validation: the worst finite score)
        a validated epoch is reported to whoever watches (``observers``: a search's pruner may stop the step)
    restore the best state; final evaluation -> (score, output, model_state)
        (score: the validation objective; with an empty validation set that of the training set)
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from neuralpredictors.training.tracking import AdvancedTracker
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm  # text bars everywhere: tqdm.auto warns in notebooks without ipywidgets

from nntransfer.configs.trainer.loop import EpochLoopConfig
from nntransfer.dataset.info import data_info
from nntransfer.models.intermediate import IntermediateLayerWrapper
from nntransfer.models.utils import freeze_params, reset_params, set_bn_to_eval
from nntransfer.trainer import controls, run_info
from nntransfer.trainer.checkpointing import LocalCheckpoints, get_rng_state, loader_generators, set_rng_state
from nntransfer.trainer.cycler import TaskCycler, sequential
from nntransfer.trainer.early_stopping import EarlyStopping, copy_state
from nntransfer.trainer.finite import check_fisher, first_non_finite, loss_diverged, non_finite_terms, weights_diverged
from nntransfer.trainer.main_loop_modules import BatchState, LoopContext, ModuleChain, read_output
from nntransfer.trainer.main_loop_modules import get as get_module
from nntransfer.trainer.main_loop_modules.base import requested_layers, teacher_needers
from nntransfer.trainer.observers import report_validation
from nntransfer.trainer.run_info import RunInfo
from nntransfer.trainer.tensorboard import TensorBoardLog

logger = logging.getLogger(__name__)

#: the tracked statistic of the loss that trains (task loss times its weight plus the modules' weighted terms)
TOTAL_LOSS = "total_loss"
#: checkpoint score of an epoch without one (negated when maximising); fits a single-precision column
UNSCORED = 1e30
Batch = Tuple[torch.Tensor, torch.Tensor, Optional[Dict[str, torch.Tensor]]]


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def resolve_device(device: str, force_cpu: bool = False) -> torch.device:
    """``"auto"``: CUDA when available (and not ``force_cpu``), else the CPU."""
    if force_cpu:
        return torch.device("cpu")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but CUDA is not available; use device='auto' or 'cpu'")
    return resolved


def is_loader(node: Any) -> bool:
    """A DataLoader or another sized iterable of batches (not a dict of them)."""
    return isinstance(node, DataLoader) or (
        hasattr(node, "__iter__") and hasattr(node, "__len__") and not isinstance(node, (Mapping, str, list, tuple))
    )


def place_on_device(node: Any, device: torch.device) -> None:
    """Tell every loader in ``node`` (a loader, or dicts of them) that can hold its data on a device
    (``set_device``: the in-memory loaders) to yield its batches on ``device``; others are left alone."""
    if isinstance(node, Mapping):
        for child in node.values():
            place_on_device(child, device)
        return
    set_device = getattr(node, "set_device", None)
    if callable(set_device):
        set_device(device)


def freeze_teacher(teacher: Optional[nn.Module], device: torch.device) -> Optional[nn.Module]:
    """The teacher on ``device``, in eval mode, its parameters frozen (None stays None)."""
    if teacher is None:
        return None
    teacher = teacher.to(device).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def with_layers(model: nn.Module, paths: Sequence[str]) -> nn.Module:
    """``model`` returning ``(extra_outputs, logits)`` with the outputs of ``paths`` (unchanged if none),
    which ``read_output`` turns into a ``ModelOutput``;
    the wrapper shares the model's parameters, so its state dict is the model's."""
    if not paths:
        return model
    return IntermediateLayerWrapper(model, {path: path for path in paths})


def loss_mismatch(loss: str, task: str, outputs: Any, targets: Any, err: Exception) -> str:
    """What a loss function that failed on a batch got, in one line (instead of torch's shape or dtype error)."""

    def described(tensor: Any) -> str:
        if not isinstance(tensor, torch.Tensor):
            return type(tensor).__name__
        return f"{tuple(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}"

    hint = ""
    if isinstance(targets, torch.Tensor) and not torch.is_floating_point(targets):
        hint = "; the targets are class indices, which a classification loss such as CrossEntropyLoss takes"
    reason = (str(err).strip().splitlines() or [""])[0]
    return (f"loss_functions[{task!r}] = {loss!r} cannot compare the model's outputs {described(outputs)} with the "
            f"targets {described(targets)} ({reason}){hint}")


class Trainer:
    """Generic trainer: the loop above. ``dataloaders`` is ``{"train": {task: loader}, "validation":
    {task: loader}, <test splits>...}``; ``cb`` is a checkpoint callback (nnfabrik's protocol, see
    ``checkpointing``); without one, ``config.checkpoint_dir`` selects a local folder (or none).
    ``teacher_model``: an earlier step's trained model, frozen beside the student (``self.teacher``);
    ``fisher``: the diagonal Fisher information the previous step handed on (``self.fisher``). The main-loop
    modules see ``self.context`` (a ``LoopContext``), not the trainer."""

    #: names of the per-task sums ``batch_statistics`` returns (besides the normalisation)
    statistics: Tuple[str, ...] = ("loss",)

    def __init__(
        self,
        model: nn.Module,
        dataloaders: Mapping[str, Any],
        seed: int,
        config: EpochLoopConfig,
        uid: Optional[Mapping[str, Any]] = None,
        cb: Optional[Callable[..., None]] = None,
        teacher_model: Optional[nn.Module] = None,
        fisher: Optional[Mapping[str, torch.Tensor]] = None,
    ) -> None:
        seed = int(seed)  # tables hand over numpy integers, which random.seed rejects
        self.config, self.seed, self.uid = config, seed, uid
        set_random_seed(seed)
        self.device = resolve_device(config.device, config.force_cpu)
        for split in ("train", "validation"):
            if not dataloaders.get(split):
                raise ValueError(f"dataloaders has no {split!r} split (it has {sorted(dataloaders)})")
        self.dataloaders = dataloaders
        place_on_device(dataloaders, self.device)  # in-memory data: sliced and augmented on the device
        self.train_loaders: Dict[str, Any] = dict(dataloaders["train"])
        self.validation_loaders: Dict[str, Any] = dict(dataloaders["validation"])
        self.task_keys = list(self.train_loaders)
        #: what every epoch tracks per task: the trainer's statistics and the total loss; what the final evaluation
        #: keeps: the statistics, and the total loss where it is the objective
        self.tracked: Tuple[str, ...] = tuple(self.statistics) + (TOTAL_LOSS,)
        self.result_names = self.tracked if config.objective == TOTAL_LOSS else tuple(self.statistics)
        if config.objective not in self.tracked:
            raise ValueError(
                f"objective {config.objective!r} is not computed by {type(self).__name__} (it tracks {list(self.tracked)}); "
                f"set objective to one of them (and maximize accordingly)"
            )
        self.model = model.to(self.device)
        missing = sorted((set(self.train_loaders) | set(self.validation_loaders)) - set(config.loss_functions))
        if missing:
            raise ValueError(f"loss_functions has no entry for the tasks {missing}; add e.g. {{{missing[0]!r}: 'CrossEntropyLoss'}}")
        self.criterion = {task: controls.build_loss(name, config.loss_options).to(self.device)
                          for task, name in config.loss_functions.items()}
        self.tracker = self.build_tracker()
        #: diagonal Fisher information the previous step handed on (parameter name -> tensor), or None
        self.fisher = {name: torch.as_tensor(value).to(self.device) for name, value in (fisher or {}).items()} or None
        if self.fisher is not None:
            check_fisher(self.fisher, "the previous step's", "train that step again with a lower learning rate")
        classes = [get_module(name) for name in config.main_loop_modules]
        needing = teacher_needers(classes, config)
        if needing and teacher_model is None:
            raise ValueError(f"{', '.join(needing)} need(s) a teacher: set teacher='previous' in this step's trainer "
                             "config, in a chain whose previous step trained the teacher")
        # wrapped once, before any module is built: every module sees the same student and teacher
        self.model = with_layers(self.model, requested_layers(classes, config, "student"))
        self.teacher = freeze_teacher(teacher_model, self.device)
        if self.teacher is not None:
            self.teacher = with_layers(self.teacher, requested_layers(classes, config, "teacher"))
        self.context = LoopContext(
            config=config, device=self.device, seed=seed, model=self.model, teacher=self.teacher,
            data_info=data_info(dataloaders), fisher=self.fisher, train_tasks=tuple(self.train_loaders),
            validation_tasks=tuple(self.validation_loaders), task_loss=self.task_loss,
            learning_rates=lambda: [group["lr"] for group in self.optimizer.param_groups],
        )
        # modules before reset and freeze: a teacher copy or a reference point is the model as received
        self.modules = ModuleChain([cls(self.context) for cls in classes])
        self.prepare_model()
        params = [p for p in self.model.parameters() if p.requires_grad] + self.modules.parameters()
        if not params:
            raise ValueError("nothing to train: every parameter is frozen (check the trainer config's freeze)")
        self.optimizer = controls.build_optimizer(config.optimizer, params, config.lr, config.optimizer_options)
        self.scheduler = controls.build_scheduler(
            config.scheduler, self.optimizer, config.max_iter - config.lr_warmup, config.maximize, config.scheduler_options
        )
        self.cycler = TaskCycler(self.train_loaders, config.train_cycler, **config.train_cycler_options)
        self.n_train_batches = len(self.cycler)
        self.warmup_steps = config.lr_warmup * controls.steps_per_epoch(self.n_train_batches, config.accumulate_grad_batches)
        self.amp_dtype = self._amp_dtype()
        use_scaler = self.amp_dtype == torch.float16 and self.device.type == "cuda"
        self.grad_scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        self.early_stopping = EarlyStopping(
            config.maximize, config.patience, config.tolerance, config.lr_decay_steps, enabled=config.early_stopping
        )
        #: > 0: a fast dev run: one epoch, at most this many batches per loop, nothing written (no checkpoints)
        self.batch_limit = int(getattr(config, "fast_dev_run", 0) or 0)
        self.checkpoints = None if self.batch_limit else cb
        # a store's callback is cleared by the store, after the result is saved; our own folder by us
        self.owns_checkpoints = cb is None and bool(config.checkpoint_dir) and not self.batch_limit
        if self.owns_checkpoints:
            self.checkpoints = LocalCheckpoints(config.checkpoint_dir)
        self.generators = loader_generators(self.train_loaders)
        self.epoch = 0
        self.global_step = 0
        self.target_lrs = [group["lr"] for group in self.optimizer.param_groups]
        if self.warmup_steps:  # start at the first warm-up step's lr (what the tracker logs for epoch 1)
            for group, target in zip(self.optimizer.param_groups, self.target_lrs):
                group["lr"] = target * controls.warmup_factor(0, self.warmup_steps)
        self.last_score = float("nan")
        #: the summed total loss of the last training epoch (on the device), or None before the first
        self.training_loss: Optional[torch.Tensor] = None
        #: the names of the loss terms the modules added so far (shown in the epoch's log line)
        self.loss_terms: Dict[str, None] = {}
        self.eval_variant = "plain"
        # valid_size=0: select and score on the training objective instead (NaN would break the tables)
        self.validation_is_empty = all(len(loader) == 0 for loader in self.validation_loaders.values())
        if self.validation_is_empty:
            logger.warning("the validation set is empty: early stopping, the plateau scheduler and the score use "
                           "the training %s instead", config.objective)

    # ------------------------------------------------------------------ set-up

    def build_tracker(self) -> AdvancedTracker:
        """Per mode and task: the sums of ``statistics`` and their normalisation; the lr; the patience."""
        per_task = {name: 0.0 for name in self.tracked} | {"normalization": 0.0}
        objectives = {
            "lr": 0.0,
            "Training": {task: dict(per_task) for task in self.train_loaders},
            "Validation": {**{task: dict(per_task) for task in self.validation_loaders}, "patience": 0.0},
        }
        main_task = next(iter(self.validation_loaders))
        return AdvancedTracker(main_objective=(main_task, self.config.objective), **objectives)

    def prepare_model(self) -> None:
        """Reset and freeze the configured parts (selectors of ``nntransfer.models.utils``)."""
        if self.config.reset:
            logger.info("reset parameters: %s", reset_params(self.model, self.config.reset))
        if self.config.freeze:
            logger.info("froze parameters: %s", freeze_params(self.model, self.config.freeze))

    def set_train_mode(self) -> None:
        self.model.train()
        if self.config.freeze_bn:
            set_bn_to_eval(self.model)

    def _amp_dtype(self) -> Optional[torch.dtype]:
        if not self.config.amp:
            return None
        if self.config.amp_dtype is not None:
            return getattr(torch, self.config.amp_dtype)
        return torch.float16 if self.device.type == "cuda" else torch.bfloat16

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    # ------------------------------------------------------------------ what a subclass may change

    def split_batch(self, batch: Any) -> Batch:
        """``(inputs, targets, extras or None)`` on the device; batches are ``(inputs, targets[, extras])``."""
        non_blocking = self.device.type == "cuda"
        inputs = batch[0].to(self.device, non_blocking=non_blocking)
        targets = batch[1].to(self.device, non_blocking=non_blocking)
        extras = None
        if len(batch) > 2 and batch[2] is not None:
            extras = {k: v.to(self.device, non_blocking=non_blocking) for k, v in batch[2].items()}
        return inputs, targets, extras

    def forward(self, model: nn.Module, inputs: torch.Tensor) -> Any:
        return model(inputs)

    def task_loss(self, outputs: torch.Tensor, targets: torch.Tensor, task_key: str) -> torch.Tensor:
        """The task's loss function (``loss_functions``) on the outputs the modules returned; one that cannot take
        them is a one-line ``ValueError`` naming it and what it got, not torch's error."""
        try:
            return self.criterion[task_key](outputs, targets)
        except RuntimeError as err:
            if isinstance(err, torch.OutOfMemoryError):
                raise
            raise ValueError(loss_mismatch(self.config.loss_functions[task_key], task_key, outputs, targets, err)) from None

    def compute_loss(self, state: BatchState) -> None:
        """``state.loss``: the modules' terms (``weight * value``, in the order they were added) plus the task
        loss (``state.task_loss``) times its weight."""
        loss = torch.zeros((), device=self.device)
        for term in state.losses.values():
            loss = loss + term.weighted()
        state.task_loss = self.task_loss(state.output.logits, state.targets, state.task)
        weight = state.task_loss_weight
        state.loss = loss + (state.task_loss if weight == 1.0 else weight * state.task_loss)

    def batch_statistics(self, outputs: torch.Tensor, targets: torch.Tensor, task_loss: torch.Tensor) -> torch.Tensor:
        """Sums over the batch, one per name in ``statistics``, as one tensor (no device sync)."""
        return (task_loss.detach().float() * targets.shape[0]).reshape(1)

    def set_eval_mode(self) -> None:
        """Evaluation mode; the variant "bn_train" keeps batch norm in training mode."""
        self.model.eval()
        if self.eval_variant == "bn_train":
            for module in self.model.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.train()

    def evaluation_variants(self) -> List[str]:
        """How every split is evaluated at the end: "plain", and "bn_train" when configured."""
        return ["plain"] + (["bn_train"] if self.config.eval_with_bn_train else [])

    def extra_output(self) -> Dict[str, Any]:
        """Entries added to ``output`` besides tracker and final results."""
        return {}

    # ------------------------------------------------------------------ one epoch

    def run_epoch(
        self,
        mode: str,
        loaders: Mapping[str, Any],
        train: bool = False,
        input_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    ) -> Dict[str, Dict[str, float]]:
        """One pass over ``loaders`` (the train cycler when ``train``); returns per task the sums of
        ``statistics``, of every loss term (its weighted value) and metric the modules added, and
        ``"normalization"`` (the number of examples). ``input_transform`` changes the inputs before the
        modules see them (e.g. test noise)."""
        model, modules, context = self.model, self.modules, self.context
        if train:
            self.set_train_mode()
            batches, n_batches = self.cycler, self.n_train_batches
            self.optimizer.zero_grad(set_to_none=True)
        else:
            self.set_eval_mode()
            batches, n_batches = sequential(loaders), sum(len(loader) for loader in loaders.values())
        if self.batch_limit:
            n_batches = min(n_batches, self.batch_limit)
        context.epoch = self.epoch
        modules.dispatch("pre_epoch", mode)
        context.end_of_epoch_requested = False
        sums: Dict[str, torch.Tensor] = {}
        counts: Dict[str, int] = {}
        added: Dict[str, Dict[str, torch.Tensor]] = {}  # per task: the sums of the terms and metrics
        total_loss: Optional[torch.Tensor] = None  # of every training batch, on the device: checked once per epoch
        progress = tqdm(batches, total=n_batches, desc=f"{mode} {self.epoch}", leave=False,  # None: off unless a terminal
                        disable=True if not self.config.show_epoch_progress else None)
        with torch.set_grad_enabled(train):
            for index, (task_key, batch) in enumerate(progress):
                inputs, targets, extras = self.split_batch(batch)
                if input_transform is not None:
                    inputs = input_transform(inputs)
                state = BatchState(mode, task_key, inputs, targets, extras or {}, model)
                modules.dispatch("pre_forward", state)
                with self.autocast():
                    if train and modules.runs_teacher:  # on exactly the batch the student sees
                        with torch.no_grad():
                            state.teacher_output = read_output(self.teacher(state.inputs))
                    state.output = read_output(self.forward(state.model, state.inputs))
                    modules.dispatch("post_forward", state)
                    self.compute_loss(state)
                modules.dispatch("post_loss", state)
                # sums stay on the device: one synchronisation per epoch, not per batch
                n = state.targets.shape[0]
                stats = torch.cat([self.batch_statistics(state.output.logits, state.targets, state.task_loss),
                                   (state.loss.detach().float() * n).reshape(1)])
                if task_key in sums:
                    sums[task_key] += stats
                    counts[task_key] += n
                else:
                    sums[task_key], counts[task_key] = stats, n
                task_added = added.setdefault(task_key, {})
                for name, term in state.losses.items():
                    self.loss_terms[name] = None
                    value = term.value.detach().float() * n  # tracked unweighted: a weight of 0 only logs it
                    task_added[name] = task_added[name] + value if name in task_added else value
                for name, value in state.metrics.items():
                    value = value.detach().float()
                    task_added[name] = task_added[name] + value if name in task_added else value
                if train:
                    total_loss = state.loss.detach() if total_loss is None else total_loss + state.loss.detach()
                    self.backward_and_step(state, index, n_batches)
                if context.end_of_epoch_requested or index + 1 == n_batches:
                    break
        modules.dispatch("post_epoch", mode)
        if train:
            self.training_loss = total_loss
        return {task: {**dict(zip(self.tracked, values.tolist())),
                       **{name: value.item() for name, value in added.get(task, {}).items()},
                       "normalization": float(counts[task])}
                for task, values in sums.items()}

    def backward_and_step(self, state: BatchState, index: int, n_batches: int) -> None:
        """Backward pass; an optimizer step every ``accumulate_grad_batches`` batches (and at the end)."""
        loss, accumulate = state.loss, self.config.accumulate_grad_batches
        if accumulate > 1:
            # the mean over the group's batches, also for a shorter last group (like one larger batch)
            group_start = index - index % accumulate
            loss = loss / min(accumulate, n_batches - group_start)
        if self.grad_scaler is not None:
            self.grad_scaler.scale(loss).backward()
        else:
            loss.backward()
        self.modules.dispatch("post_backward", state)
        if (index + 1) % accumulate and index + 1 < n_batches and not self.context.end_of_epoch_requested:
            return
        if self.global_step <= self.warmup_steps and self.warmup_steps:
            factor = controls.warmup_factor(self.global_step, self.warmup_steps)
            for group, target in zip(self.optimizer.param_groups, self.target_lrs):
                group["lr"] = target * factor
        if self.config.grad_clip_norm:
            if self.grad_scaler is not None:
                self.grad_scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            parameters = [p for group in self.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(parameters, self.config.grad_clip_norm)
        if self.grad_scaler is not None:
            self.grad_scaler.step(self.optimizer)
            self.grad_scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.global_step += 1
        self.modules.dispatch("post_optimizer", state)

    # ------------------------------------------------------------------ evaluation

    def evaluate(
        self,
        loaders: Mapping[str, Any],
        split: str,
        variant: str = "plain",
        input_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    ) -> Dict[str, Dict[str, float]]:
        """Normalised statistics per task on ``loaders`` in mode "Test" (``variant``: "plain", "bn_train",
        or one a subclass adds); the model's state and modes are restored afterwards."""
        saved = copy_state(self.model) if variant == "bn_train" else None
        self.eval_variant = variant
        try:
            results = self.run_epoch("Test", loaders, input_transform=input_transform)
        finally:
            self.eval_variant = "plain"
            if saved is not None:
                self.model.load_state_dict(saved)
            self.model.eval()
        # the statistics only: what modules add in evaluation is tracked in validation, not stored as results
        return {task: {name: value for name, value in values.items() if name in self.result_names}
                for task, values in self.normalized(results).items()}

    def evaluate_tree(self, node: Any, split: str, variant: str = "plain") -> Dict[Any, Any]:
        """Evaluate a split: ``{task: loader}``, a bare loader (the main task), or a nesting of them
        (e.g. ``c_test[corruption][severity]``)."""
        known = set(self.task_keys) | set(self.validation_loaders) | set(self.config.loss_functions)
        if isinstance(node, Mapping) and node and all(k in known and is_loader(v) for k, v in node.items()):
            return self.evaluate(node, split, variant)
        if is_loader(node):
            return self.evaluate({self.task_keys[0]: node}, split, variant)
        if isinstance(node, Mapping):
            return {key: self.evaluate_tree(child, f"{split}/{key}", variant) for key, child in node.items()}
        raise ValueError(f"dataloaders[{split!r}] is neither a DataLoader nor a dict of them: {type(node).__name__}")

    def final_evaluation(self) -> Tuple[float, Dict[str, Any]]:
        """Every split except "train" under every evaluation variant; the score is the validation objective."""
        results: Dict[str, Any] = {}
        for split, node in self.dataloaders.items():
            if split == "train":
                continue
            for variant in self.evaluation_variants():
                results[split if variant == "plain" else f"{split}_{variant}"] = self.evaluate_tree(node, split, variant)
        scored = "validation"
        if self.validation_is_empty:
            scored = "train"
            results["train"] = self.evaluate(self.train_loaders, "train")
        score = self.score_of(results[scored])
        logger.info("final %s %s: %.6g", scored, self.config.objective, score)
        return score, results

    # ------------------------------------------------------------------ the run

    def log_epoch(self, mode: str, results: Mapping[str, Mapping[str, float]]) -> None:
        """Track an epoch's sums; a loss term or metric first seen now gets a series (0 for the epochs before)."""
        log = self.tracker.log
        for task, values in results.items():
            for name, value in values.items():
                if name not in log.get(mode, {}).get(task, {}):
                    self.tracker.add_objectives({mode: {task: {name: 0.0}}})
                    log[mode][task][name] = [0.0] * (self.tracker.epoch + 1)
                self.tracker.log_objective(value, (mode, task, name))

    def epoch_line(self, training: Mapping[str, Mapping[str, float]]) -> str:
        """The training part of an epoch's log line: per task the loss and every loss term, per example."""
        parts = []
        for task, values in self.normalized(training).items():
            shown = ["loss"] + [name for name in self.loss_terms if name in values]
            prefix = f"{task}: " if len(training) > 1 else ""
            parts.append(prefix + ", ".join(f"{name} {values[name]:.4g}" for name in shown))
        return "; ".join(parts)

    def normalized(self, results: Mapping[str, Mapping[str, float]]) -> Dict[str, Dict[str, float]]:
        """Sums divided by the number of examples."""
        out = {}
        for task, values in results.items():
            n = max(values["normalization"], 1.0)
            out[task] = {name: value / n for name, value in values.items() if name != "normalization"}
        return out

    def score_of(self, results: Mapping[str, Mapping[str, float]]) -> float:
        """The objective averaged over the tasks of a (normalised) result."""
        values = [task_results[self.config.objective] for task_results in results.values()]
        if not values:  # an empty validation set (valid_size=0): nothing to select by
            return float("nan")
        return float(sum(values) / len(values))

    def validate(self) -> float:
        results = self.run_epoch("Validation", self.validation_loaders)
        self.log_epoch("Validation", results)
        self.last_validation = self.normalized(results)
        return self.score_of(self.last_validation)

    def decay_lr(self) -> None:
        """Restore the best state (unless ``restore_on_decay=False``) and decay the learning rate (early stopping
        ran out of patience)."""
        if self.config.restore_on_decay:
            self.model.load_state_dict(self.early_stopping.best_state)
        self.target_lrs = [lr * self.config.lr_decay for lr in self.target_lrs]
        for group in self.optimizer.param_groups:
            group["lr"] *= self.config.lr_decay
        restored = f"restored epoch {self.early_stopping.best_epoch} and " if self.config.restore_on_decay else ""
        logger.info("epoch %d: no improvement, %sdecayed the lr to %s", self.epoch, restored,
                    [g["lr"] for g in self.optimizer.param_groups])

    def train_epochs(self) -> None:
        """The epoch loop (from the resumed epoch on)."""
        config = self.config
        last_epoch = 1 if self.batch_limit else config.max_iter
        epochs = range(self.epoch + 1, last_epoch + 1)
        for epoch in tqdm(epochs, desc="epochs", disable=True if not config.show_progress or self.early_stopping.stopped else None):
            if self.early_stopping.stopped:
                break
            self.epoch = epoch
            self.tracker.start_epoch()
            self.tracker.log_objective(self.optimizer.param_groups[0]["lr"], ("lr",))
            training = self.run_epoch("Training", self.train_loaders, train=True)
            self.log_epoch("Training", training)
            self.check_finite()
            action = None
            if epoch % config.interval == 0 or epoch == last_epoch:
                if self.validation_is_empty:
                    self.last_score = self.score_of(self.normalized(training))
                else:
                    self.last_score = self.validate()
                action = self.early_stopping.step(self.last_score, epoch, self.model)
                self.tracker.log_objective(self.early_stopping.counter, ("Validation", "patience"))
                if action == "decay":
                    self.decay_lr()
                if controls.is_plateau(self.scheduler) and epoch > config.lr_warmup:
                    self.scheduler.step(self.last_score)
            if self.scheduler is not None and not controls.is_plateau(self.scheduler) and epoch > config.lr_warmup:
                self.scheduler.step()
            # patience running out at the last epoch stops nothing: the epoch is shown as one without improvement
            shown = "wait" if action == "stop" and epoch == last_epoch else action
            logger.info("epoch %d: training %s; validation %s %.6g (%s)", epoch, self.epoch_line(training),
                        config.objective, self.last_score, shown or "not validated")
            self.save_checkpoint(self.last_score if action is not None else None)
            self.write_run_logs()
            if action is not None and not self.validation_is_empty and not self.batch_limit:
                report_validation(self.uid, epoch, self.last_validation)  # a search may stop the step here
            if action == "stop":
                break
        self.log_end_of_training(last_epoch)

    def log_end_of_training(self, last_epoch: int) -> None:
        """One line on why training ended: early stopping (before ``last_epoch``) or the last epoch reached.
        Early stopping's patience running out at the last epoch is the latter: nothing was cut short."""
        best = self.early_stopping.best_epoch
        if self.early_stopping.stopped and self.epoch < last_epoch:
            logger.info("early stopping after epoch %d of %d: no improvement of the validation %s for %d validation(s) "
                        "(best: epoch %d)", self.epoch, last_epoch, self.config.objective, max(self.config.patience, 1), best)
        elif self.batch_limit:
            logger.info("fast dev run: trained 1 epoch of at most %d batches", self.batch_limit)
        else:
            logger.info("reached max_iter: trained %d epochs (best: epoch %d)", self.epoch, best)

    def check_finite(self) -> None:
        """After a training epoch: stop the step (``TrainingDiverged``, naming the epoch and the loss term) when
        the epoch's training loss or the model's weights are not finite, before anything of it is saved."""
        total = self.training_loss
        if total is not None and not bool(torch.isfinite(total)):
            raise loss_diverged(self.epoch, float(total), non_finite_terms(self.tracker.log["Training"], len(self.train_loaders)))
        bad = first_non_finite(self.model.state_dict().items())
        if bad is not None:
            raise weights_diverged(self.epoch, bad)

    def train(self) -> Tuple[float, Dict[str, Any], Dict[str, torch.Tensor]]:
        """Train, evaluate; returns ``(score, output, model_state)``."""
        try:
            self.resume()
            self.write_run_logs()  # fails here, before training, when TensorBoard or MLflow is missing
            self.train_epochs()
            if self.config.restore_best and self.early_stopping.best_state is not None:
                self.model.load_state_dict(self.early_stopping.best_state)
            score, final = self.final_evaluation()
            self.write_run_logs(final)
            output = {"tracker": self.tracker.state_dict(), "final": final, "best_epoch": self.early_stopping.best_epoch,
                      "epochs": self.epoch}
            output.update(self.extra_output())
        except BaseException as err:  # an interrupt or a pruned trial resumes later: its run is not failed
            self.close_run_logs("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
            raise
        self.close_run_logs("FINISHED")
        if self.owns_checkpoints and not self.config.keep_checkpoints:
            self.checkpoints.clear(self.uid)
        model_state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        return score, output, model_state

    def run_description(self) -> RunInfo:
        """Who this run is for the trackers: what the pipeline says of the step being trained (its name, id and
        settings, ``run_info.describing``), else a name from the seed and the key's hash, with the trainer's settings."""
        from nntransfer.configs.codec import make_hash

        step_id = make_hash(dict(self.uid)) if self.uid else ""
        info = run_info.current(step_id)
        if info is None:
            settings = {"seed": self.seed, **run_info.flat_settings({"trainer": self.config.to_dict()})}
            info = RunInfo(run_info.title(seed=self.seed), step_id, settings,
                           {run_info.STEP_ID_TAG: step_id} if step_id else {})
        return info

    def write_run_logs(self, final: Optional[Mapping[str, Any]] = None) -> None:
        """With the runtime options ``tensorboard_dir`` and ``mlflow_uri``: the tracked curves of the epochs so
        far (and, given ``final``, the final evaluation) as TensorBoard events in ``<tensorboard_dir>/<run
        name>`` and as metrics of the step's MLflow run (``run_description``: ``"KD seed 1 step 1 fine-tune 5-9
        d710c56a"``). The first call, before training (after a resume), opens them, so that a missing package
        or a refused tracking URI stops the step before it trains. A fast dev run writes nothing."""
        folder = getattr(self.config, "tensorboard_dir", "")
        uri = getattr(self.config, "mlflow_uri", "")
        if not (folder or uri) or self.batch_limit:
            return
        if getattr(self, "_run_logs", None) is None:
            info, logs = self.run_description(), []
            try:
                if folder:
                    logs.append(TensorBoardLog(folder, info.name, info.settings, first_epoch=self.epoch))
                if uri:
                    from nntransfer.trainer.mlflow_log import MLflowLog  # MLflow's import takes a second

                    logs.append(MLflowLog(uri, info, first_epoch=self.epoch))
            except BaseException:
                for log in logs:
                    log.close("KILLED")
                raise
            self._run_logs = logs
        state = self.tracker.state_dict()
        for log in self._run_logs:
            log.write_epochs(state, self.epoch)
            if final is not None:
                log.write_final(final, self.epoch)

    def close_run_logs(self, status: str) -> None:
        """End the run's TensorBoard and MLflow logs (``FINISHED``, ``FAILED``, ``KILLED``); a failure to do so
        only warns (the step's result matters more than its log)."""
        for log in getattr(self, "_run_logs", None) or ():
            try:
                log.close(status)
            except Exception as err:
                logger.warning("could not close the run's log %s: %s", type(log).__name__, err)
        self._run_logs = None

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> Dict[str, Any]:
        """The loop's own counters (checkpointed beside model, optimizer, ...)."""
        return {"epoch": self.epoch, "global_step": self.global_step, "target_lrs": list(self.target_lrs),
                "last_score": self.last_score}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        self.target_lrs, self.last_score = list(state["target_lrs"]), state["last_score"]

    def _checkpoint_objects(self) -> Dict[str, Any]:
        return {"optimizer": self.optimizer, "scheduler": self.scheduler, "tracker": self.tracker,
                "early_stopping": self.early_stopping, "modules": self.modules, "trainer": self,
                "grad_scaler": self.grad_scaler}

    def save_checkpoint(self, score: Optional[float] = None) -> None:
        """Checkpoint the run after an epoch; ``score``: the epoch's validation score (None: not validated).

        The tables store the score in a non-null float column, so an epoch without a (finite) score gets
        the worst finite score: never kept or restored as the "best" checkpoint."""
        if self.checkpoints is None:
            return
        if score is None or not math.isfinite(score):
            score = -UNSCORED if self.config.maximize else UNSCORED
        state = {name: obj.state_dict() if obj is not None else None for name, obj in self._checkpoint_objects().items()}
        state.update(self.config.chkpt_options)
        state.update(action="save", score=float(score), maximize_score=self.config.maximize,
                     rng=get_rng_state(self.generators))
        self.checkpoints(uid=self.uid, epoch=self.epoch, model=self.model, state=state)

    def resume(self) -> bool:
        """Load the last checkpoint, if any; returns whether training resumes."""
        if self.checkpoints is None:
            return False
        state = {"action": "last", "maximize_score": self.config.maximize, "net": self.model,
                 **self._checkpoint_objects()}
        self.checkpoints(uid=self.uid, epoch=self.epoch, model=self.model, state=state)
        if "epoch" not in state:
            return False
        # the RNG state last, so that nothing after it draws numbers the uninterrupted run did not draw
        set_rng_state(state["rng"], self.generators)
        logger.info("resumed from the checkpoint of epoch %d", self.epoch)
        return True
