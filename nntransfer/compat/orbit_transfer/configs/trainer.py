"""orbit_transfer's trainer configs (orbit_transfer/configs/trainer/): ``Classification`` (the epoch loop of the
2-D experiments), ``TransferMixin`` (its ``regularization={...}`` transfer methods) and ``SimpleTrainerConfig``
(the step loop of the MNIST-1D experiments), with the original defaults: the first two as this library's
``ClassificationTrainerConfig``, the step loop as a trainer function of this package
(``nntransfer.compat.orbit_transfer.simple_trainer``), since nntransfer's trainer loops over epochs.

``Classification``'s own fields are sinzlab/nntransfer's ``TrainerConfig``'s; they are read as this library
reads that original (README, "Coming from sinzlab/nntransfer": ``scheduler="adaptive"`` -> ``"plateau"``,
``optimizer_options={"lr": ...}`` -> ``lr``, ``threshold`` -> ``tolerance``, ``main_objective`` ->
``objective``, ``freeze_bn="all"`` -> ``True``), plus ``scheduler="manual"`` with ``lr_milestones`` ->
``"multistep"``. ``TransferMixin``'s representation regularizers train as the original's
(``nntransfer.compat.orbit_transfer.representation``); its learned orbit is refused in one line saying what differs.
"""

from __future__ import annotations

import logging
from typing import Any, Dict

from nntransfer.compat.orbit_transfer._translate import (
    OriginalFields,
    Refused,
    check_default,
    integral,
    refuse_leftovers,
    warn_once,
)
from nntransfer.configs.trainer import ClassificationTrainerConfig, TrainerConfig

logger = logging.getLogger(__name__)
#: sinzlab/nntransfer nntransfer/configs/trainer/base.py: TrainerConfig's fields that this library's trainer
#: config does not have under the same name and meaning (the others, e.g. max_iter, patience, lr_decay,
#: lr_warmup, interval, restore_best, lr_decay_steps, loss_functions, are the same fields)
ORIGINAL_TRAINER = {
    "optimizer_options": {"amsgrad": False, "lr": 0.0003},
    "lr_decay": 0.8,
    "scheduler": "manual",
    "patience": None,
    "threshold": 0.0001,
    "verbose": False,
    "lr_milestones": (),
    "min_lr": 0.00001,
    "threshold_mode": "rel",
    "train_cycler": "LongCycler",
    "train_cycler_args": {},
    "loss_weighing": False,
    "loss_accum_batch_n": None,
    "lr_decay_steps": 1,
    "show_epoch_progress": False,
    "mtl": False,
    "chkpt_options": {"save_every_n": 1, "keep_best_n": 1, "keep_last_n": 1, "keep_selection": ()},
}

#: orbit_transfer/configs/trainer/mixins/transfer.py: TransferMixin's fields without a counterpart here, and
#: their defaults (any other value is refused)
ORIGINAL_TRANSFER = {
    "scale_loss_with_arctanh": False,
    "synaptic_intelligence_computation": False,
    "transfer_restriction": (),
    "transfer_after_train": False,
    "single_input_stream": True,
    "readout_name": "fc",
    "reset_linear_frequency": None,
    "regularization": {},
    # orbit_transfer/trainer/img_classification.py: the switches of its learned-orbit step
    "switch_teacher": False,
    "deactivate_dropout": False,
}

#: why each original regularizer (orbit_transfer/trainer/main_loop_modules/) that is not mapped has no counterpart
REGULARIZERS: Dict[str, str] = {}
#: TransferMixin's switches of the learned orbit's step (``Classification._switched_teacher``)
SWITCHES = ("regularization", "switch_teacher", "deactivate_dropout")

#: the regularizers ``nntransfer.compat.orbit_transfer.representation`` computes as the original did, and the keys
#: of ``regularization`` each one read (besides "regularizer", "gamma" and "decay_gamma")
MAPPED_REGULARIZERS = {
    "KnowledgeDistillation": ("softmax_temp",),
    "AttentionTransfer": ("vit_input",),
    "RDL": ("dist_measure", "use_arctanh"),
}
#: the main-loop module that computes them (a dotted path, so that a worker imports it from a stored config)
REPRESENTATION_MODULE = "nntransfer.compat.orbit_transfer.representation.RepresentationRegularization"

#: orbit_transfer/trainer/main_loop_modules/equivariance_transfer.py: the keys EquivarianceTransfer read, with the
#: defaults it read them with (``nntransfer.compat.orbit_transfer.equivariance`` computes it)
EQUIVARIANCE_KEYS = {
    "learn_equiv": True, "group_size": 40, "ce_factor": 1.0, "equiv_factor": 1.0, "inv_factor": 1.0, "id_factor": 1.0,
    "id_between_filters": False, "max_stacked_transform": 1, "hinge_epsilon": 0.5, "mse_dist": False,
    "exclude_inv_from_id_loss": False, "inv_for_all_layers": False, "cut_input_grad": True, "clamp_input": True,
}
#: keys it read that are not mapped, their defaults, and why (any other value is refused)
EQUIVARIANCE_REFUSED = {
    "transform_factor": (0.0, "the original's proper-transform term indexed the kernels as affine matrices and "
                              "crashed on a kernel orbit"),
    "id_between_transforms": (False, "the identity term on a transformed colour grid image is not mapped"),
    "visualize": (False, "it plotted the orbit on CUDA after each epoch (plots only)"),
}
EQUIVARIANCE_MODULE = "nntransfer.compat.orbit_transfer.equivariance.EquivarianceTransfer"


def translate_equivariance(owner: str, settings: Dict[str, Any]) -> Dict[str, Any]:
    """EquivarianceTransfer's keys with the original's defaults filled in (what trains is in the stored config)."""
    out: Dict[str, Any] = {}
    for key, default in EQUIVARIANCE_KEYS.items():
        value = settings.pop(key, default)
        if isinstance(default, bool):
            value = bool(value)
        elif isinstance(default, int):
            value = integral(owner, f"regularization[{key!r}]", value)
        else:
            value = float(value)
        out[key] = value
    ramp = dict(settings.pop("ramp_up", None) or {})
    out["ramp_up"] = {key: integral(owner, f"regularization ramp_up[{key!r}]", ramp.pop(key))
                      for key in ("ce", "equiv", "inv", "id") if key in ramp}
    if ramp:  # the original ramped only the factors named by these keys
        warn_once(owner, f"regularization ramp_up {ramp!r} ramps nothing: orbit_transfer's EquivarianceTransfer read "
                         "only the keys ce, equiv, inv, id, transform (dropped)")
    for key, (default, why) in EQUIVARIANCE_REFUSED.items():
        value = settings.pop(key, default)
        if value != default and value not in (None, {}):
            raise Refused(owner, f"regularization {key}={value!r} (EquivarianceTransfer): {why}")
    if out["group_size"] < 2:
        raise Refused(owner, "regularization group_size below 2 (EquivarianceTransfer): the original drew h != g")
    if out["max_stacked_transform"] < 1:
        raise Refused(owner, "regularization max_stacked_transform below 1 (EquivarianceTransfer)")
    return out


class RepresentationRegularizationMixin:
    """The config mixin of ``representation.RepresentationRegularization``: the original's ``regularization``
    dict (``regularizer``, ``gamma`` and the regularizer's own keys), checked by ``Classification``'s
    translation."""

    def __init__(self, **kwargs):
        self.set_defaults(regularization={"DEFAULT EMPTY": True})
        super().__init__(**kwargs)


def translate_regularization(owner: str, regularization: Dict[str, Any]) -> Dict[str, Any]:
    """The ``regularization`` dict as the module reads it: the keys the original read, checked; keys it never
    read are dropped with a WARNING. A setting the original could not train (RDL's distances other than CKA) is
    kept and refused by the module's chain check, so that the other chains of a recipe still run."""
    settings = dict(regularization)
    name = settings.pop("regularizer", None)
    if name not in MAPPED_REGULARIZERS and name != "EquivarianceTransfer":
        why = REGULARIZERS.get(name, "it is no regularizer of orbit_transfer's main-loop modules")
        raise Refused(owner, f"regularization={{'regularizer': {name!r}, ...}}: {why}")
    if settings.pop("decay_gamma", False):
        raise Refused(owner, f"regularization decay_gamma=True ({name}): the original's per-epoch decay of gamma is not "
                             "mapped")
    out: Dict[str, Any] = {"regularizer": name, "gamma": float(settings.pop("gamma", 0.5))}
    if name == "EquivarianceTransfer":
        out.update(translate_equivariance(owner, settings))
    for key in MAPPED_REGULARIZERS.get(name, ()):
        if key in settings:
            out[key] = settings.pop(key)
    if name == "RDL":  # the distances other than CKA crashed in the original: refused by the chain check
        out["dist_measure"] = out.get("dist_measure")
        out["use_arctanh"] = bool(out.get("use_arctanh", False))
    if "softmax_temp" in out:
        out["softmax_temp"] = float(out["softmax_temp"])
    for key in sorted(settings):
        warn_once(owner, f"regularization[{key!r}]={settings[key]!r} is read by nothing in orbit_transfer's {name} "
                         "(dropped)")
    return out


class TransferMixin:
    """orbit_transfer/configs/trainer/mixins/transfer.py, for ``class T(TransferMixin, Classification)``: its
    defaults (``freeze``, ``freeze_bn``, ``reset`` and ``data_transfer`` are this library's fields of the same
    meaning); a ``regularization`` of ``KnowledgeDistillation``, ``AttentionTransfer`` or ``RDL`` (with
    ``dist_measure="CKA"``) trains as the original did (``nntransfer.compat.orbit_transfer.representation``: the task
    loss with weight 1 plus gamma times the distance), ``EquivarianceTransfer`` is refused with one line naming what
    differs (``REGULARIZERS``)."""

    ORIGINAL = ORIGINAL_TRANSFER

    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.declare_original_defaults(TransferMixin, kwargs)
        super().__init__(**kwargs)


class Classification(OriginalFields, ClassificationTrainerConfig):
    """orbit_transfer/configs/trainer/classification.py: sinzlab/nntransfer's ``TrainerConfig`` with
    ``maximize=True``; its epoch loop is this library's classification trainer, its fields read as this
    library reads sinzlab/nntransfer's (README, "Coming from sinzlab/nntransfer").

    That reading is the library's, not this module's; reading sinzlab/nntransfer's trainer/trainer.py and
    trainer/utils/early_stopping.py, its loop differs from this library's in details that reach these recipes
    (to be settled in that reading, ``nntransfer.configs.trainer.loop``): the original validates once before
    training (the first best score and plateau step); after an improvement it waits ``patience + 1``
    validations; at the end of each patience cycle it only restores the best state (the plateau scheduler
    decays the learning rate by itself) and ``lr_decay_steps`` counts those cycles; its ``lr_warmup`` dampens
    the learning rate once per epoch (pytorch_warmup, stepped with the scheduler)."""

    ORIGINAL = ORIGINAL_TRAINER

    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.declare_original_defaults(Classification, kwargs)
        self.maximize = True
        self.eval_with_bn_train = False
        super().__init__(**kwargs)

    def translate(self, original: Dict[str, Any]) -> Dict[str, Any]:
        owner = type(self).__name__
        regularization = original.pop("regularization", {}) or {}
        out: Dict[str, Any] = {}
        if regularization:
            out["regularization"] = translate_regularization(owner, regularization)
            equivariance = out["regularization"]["regularizer"] == "EquivarianceTransfer"
            out["main_loop_modules"] = [EQUIVARIANCE_MODULE if equivariance else REPRESENTATION_MODULE]
        out.update(self._switched_teacher(owner, original, out.get("regularization", {})))
        check_default(owner, original, [n for n in ORIGINAL_TRANSFER if n not in SWITCHES], ORIGINAL_TRANSFER,
                      "has no counterpart here")
        options = dict(original.pop("optimizer_options", {}) or {})
        options.pop("lr", None)  # the alias moved it to lr already
        out["optimizer_options"] = options
        out["lr_decay"] = original.pop("lr_decay", 0.8)
        patience = original.pop("patience", None)
        if patience is None:
            raise Refused(owner, "patience=None: the original's early stopping compares with None; give a patience")
        out["patience"] = patience
        out["lr_decay_steps"] = original.pop("lr_decay_steps", 1)
        milestones = list(original.pop("lr_milestones", ()) or ())
        min_lr = original.pop("min_lr", 0.00001)
        scheduler = original.pop("scheduler", "manual")
        if scheduler in ("manual", None):  # torch's MultiStepLR(lr_milestones, gamma=lr_decay), stepped per epoch
            if milestones and self.__dict__.get("lr_warmup"):
                raise Refused(owner, "scheduler='manual' with lr_milestones and lr_warmup: the original counts "
                                     "milestones from the first epoch, nntransfer's multistep after the warm-up")
            out["scheduler"] = "multistep" if milestones else None
            out["scheduler_options"] = {"milestones": milestones, "gamma": out["lr_decay"]} if milestones else {}
        elif scheduler == "plateau":  # "adaptive", translated by the library (factor, patience, threshold, min_lr)
            out["scheduler"] = "plateau"
            out["scheduler_options"] = dict(self.__dict__.get("scheduler_options", {}), min_lr=min_lr)
        else:
            raise Refused(owner, f"scheduler={scheduler!r} is no scheduler of the original trainer")
        if original.pop("threshold_mode", "rel") != "rel":
            raise Refused(owner, "threshold_mode other than 'rel' is not mapped")
        cycler, cycler_args = original.pop("train_cycler", "LongCycler"), original.pop("train_cycler_args", {})
        if cycler != "LongCycler" or cycler_args:
            raise Refused(owner, f"train_cycler={cycler!r} with {cycler_args!r}: only the one-task LongCycler is mapped")
        out["train_cycler"] = "round_robin"  # one task: every batch of it in turn, as LongCycler
        accumulate = original.pop("loss_accum_batch_n", None)
        out["accumulate_grad_batches"] = int(accumulate or 1)
        for name in ("verbose", "show_epoch_progress", "chkpt_options"):  # printing and checkpoint files
            original.pop(name, None)
        check_default(owner, original, ("loss_weighing", "mtl"), ORIGINAL_TRAINER, "(several tasks) is not mapped")
        refuse_leftovers(owner, original)
        return out


    @staticmethod
    def _switched_teacher(owner: str, original: Dict[str, Any], regularization: Dict[str, Any]) -> Dict[str, Any]:
        """sinzlab/nntransfer trainer/trainer.py: ``switch_teacher`` swapped the step's model and ``student_model``
        after the optimizer was built on the latter, so the network ran every batch (dropout off with
        ``deactivate_dropout``) while the optimizer trained ``student_model``, which the step handed on; its early
        stopping restored the frozen network, not what trained. Mapped where the original used it, learning the
        orbit (``compat.orbit_transfer.equivariance``): nothing is restored."""
        switch = bool(original.pop("switch_teacher", False))
        no_dropout = bool(original.pop("deactivate_dropout", False))
        learn = regularization.get("regularizer") == "EquivarianceTransfer" and regularization.get("learn_equiv")
        if learn and not switch:
            raise Refused(owner, "EquivarianceTransfer with learn_equiv=True needs switch_teacher=True: without it the "
                                 "original ran the network as the orbit and crashed")
        if switch and not learn:
            raise Refused(owner, "switch_teacher=True is mapped only for learning the orbit (EquivarianceTransfer with "
                                 "learn_equiv=True)")
        if switch and not no_dropout:
            raise Refused(owner, "switch_teacher=True without deactivate_dropout=True: the original ran the frozen "
                                 "network with its dropout active in training, which is not mapped")
        if no_dropout and not switch:
            raise Refused(owner, "deactivate_dropout=True without switch_teacher=True: training a network with its "
                                 "dropout off is not mapped")
        return {"restore_best": False, "restore_on_decay": False} if switch else {}


class DataGenerationMixin:
    """orbit_transfer/configs/trainer/mixins/transfer.py DataGenerationMixin: not mapped (refused when used)."""

    def __init__(self, **kwargs):
        raise Refused(type(self).__name__, "DataGenerationMixin (data, Fisher, SI omega or covariance handed to the "
                                           "next step) is not mapped")


#: orbit_transfer/configs/trainer/simple_trainer.py: SimpleTrainerConfig's fields (its ``device="cuda"`` is left
#: out: where a step trains is this library's runtime option ``device``, "auto" unless a recipe or run sets it)
ORIGINAL_SIMPLE = {
    "forward": "default", "total_steps": 8000, "batch_size": 1000, "eval_every": 1000, "print_every": 1000,
    "checkpoint_every": 1000, "rep_layer": "linear1", "teacher_rep_layer": "conv1", "lr_decay": 0.8,
    "learning_rate": 1e-2, "restore_best": True, "lr_decay_steps": 3, "patience": 5, "weight_decay": 0.0,
    "gamma": 0.0, "softmax_temp": 1.0, "equiv_factor": 1.0, "invertible_factor": 1.0,
    "identity_factor": 1.0, "student_model": {},
    # read by orbit_transfer/trainer/simple_trainer.py and forward_methods.py without a default (None when unset)
    "select_on_loss": False, "id_between_filters": False, "augment": 0,
}

#: orbit_transfer/trainer/simple_trainer.py trainer_fn: the forward= switch (any other value: ce_forward)
FORWARD_METHODS = ("kd", "kd_match", "rdl", "cka", "attention", "equiv_transfer", "equiv_learn")

#: what the step loop (``nntransfer.compat.orbit_transfer.simple_trainer``) reads, under the original names
STEP_LOOP_FIELDS = ("forward", "total_steps", "batch_size", "eval_every", "learning_rate", "weight_decay", "lr_decay",
                    "patience", "lr_decay_steps", "restore_best", "gamma", "softmax_temp", "equiv_factor",
                    "invertible_factor", "identity_factor", "select_on_loss", "id_between_filters", "augment")

#: fields the original declared or the recipes pass that its trainer never read: dropped (with a WARNING where
#: a recipe gave them a value, as the MNIST-1D recipes' ``lr``), or refused where their default was changed
_PRINTING = ("print_every", "checkpoint_every")
_UNREAD = {"rep_layer": "linear1", "teacher_rep_layer": "conv1"}


class SimpleTrainerConfig(OriginalFields, TrainerConfig):
    """orbit_transfer/configs/trainer/simple_trainer.py: the MNIST-1D step loop, trained by this module's own
    trainer function ``nntransfer.compat.orbit_transfer.simple_trainer.simple_trainer`` (its docstring draws
    the loop: ``total_steps`` Adam steps on batches cut in order from the unshuffled training split, the loss
    ``(1 - gamma) * CE + gamma * reg`` of the ``forward`` method, an evaluation every ``eval_every`` steps with
    ReduceLROnPlateau and the original's patience and decay counters). The fields are the original's, with its
    defaults; ``student_model`` is this library's field of the same meaning (the step's model is the teacher).
    ``lr``, which the MNIST-1D recipes pass in their settings dicts, was read by nothing in the original (it
    trained at ``learning_rate``): it is dropped with a WARNING, and ``learning_rate`` trains, as there."""

    fn = "nntransfer.compat.orbit_transfer.simple_trainer.simple_trainer"
    ORIGINAL = ORIGINAL_SIMPLE

    def __init__(self, **kwargs):
        self.load_kwargs(**kwargs)
        self.declare_original_defaults(SimpleTrainerConfig, kwargs)
        # the runtime options the step loop reads (nntransfer.configs.runtime; not hashed): where it trains, a fast
        # dev run's limit, and the log folders it warns that it does not write
        self.set_defaults(device="auto", fast_dev_run=0, tensorboard_dir="", mlflow_uri="")
        super().__init__(**kwargs)

    def translate(self, original: Dict[str, Any]) -> Dict[str, Any]:
        owner = type(self).__name__
        student = original.pop("student_model", None)
        out: Dict[str, Any] = {"student_model": student or None}
        for name in _PRINTING:
            original.pop(name, None)
        check_default(owner, original, tuple(_UNREAD), _UNREAD, "is read by nothing in orbit_transfer's simple trainer")
        if "lr" in original:
            warn_once(owner, f"lr={original.pop('lr')!r} is read by nothing in orbit_transfer's simple trainer; it trains "
                             "at learning_rate, as the original did (dropped from the config)")
        defaults = self.original_defaults()
        for name in STEP_LOOP_FIELDS:
            value = original.pop(name, defaults[name])
            if name in ("total_steps", "batch_size", "eval_every", "patience", "lr_decay_steps", "augment"):
                value = integral(owner, name, value if value is not None else 0)
            elif name in ("select_on_loss", "id_between_filters", "restore_best"):
                value = bool(value)
            elif name != "forward":
                value = float(value)
            out[name] = value
        refuse_leftovers(owner, original)
        return out


__all__ = ["Classification", "TransferMixin", "DataGenerationMixin", "SimpleTrainerConfig"]
