"""One step, built and trained: the single path both stores (work folder and tables) follow.

::

    dataset_fn(seed=seed, [transfer_data=previous step's per-example data], **dataset_config, **runtime)
        -> dataloaders; the handed-on data must belong to exactly these training examples
    student = model_fn(dataloaders, seed=seed, **model_config,
                       [state_dict=previous weights, transfer=True  if trainer start_from_previous])
    teacher = (trainer teacher="previous") the previous step's model, rebuilt from that step's own model
              function and config, with its weights loaded strictly
    original form (trainer student_model={...}): teacher = model_fn(**model_config) from the previous
              weights, student = model_fn(**student_model) from scratch
    trainer_fn(model=student, dataloaders=dataloaders, seed=seed, uid=key, cb=checkpoints,
               [teacher_model=teacher], [fisher=previous step's Fisher], **trainer_config, **runtime)
        -> (score, output, model_state)
    output.pop("transfer_data") + record (data key, seed, example ids) -> handed on to the next step

``run_step`` does exactly that; ``train_and_store`` adds what every store needs around it: the previous
step's weights and handed-on data read from the store, the result saved atomically, the checkpoints
cleared only after the result is safe.

What a step hands on (one flat dict of arrays, stored as ``transfer_data.npz`` or in the tables'
``DataStorage``): per-example arrays by name (e.g. ``logits``, one row per training example, in the
order of the producing step's training set); ``fisher/<parameter>`` arrays (EWC); and the record
``record/dataset_hash``, ``record/seed``, ``record/example_ids`` that identifies the examples.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from nntransfer.configs.codec import make_hash
from nntransfer.configs.experiment import Experiment
from nntransfer.configs.runtime import RUNTIME_FIELDS
from nntransfer.configs.test_sets import earlier_split, split_identity
from nntransfer.provenance import step_provenance
from nntransfer.registry import import_object

logger = logging.getLogger(__name__)

ROLES = ("dataset", "model", "trainer")


def resolve_function(path: str, role: str = "") -> Callable:
    """The callable a dotted path names (``"package.module.function"``); ``ValueError`` with one line naming
    it as the ``role``'s function (``"dataset"``...; none: just "function")."""
    if callable(path):
        return path
    kind = f"{role} function" if role else "function"
    found = import_object(path, kind)
    if not callable(found):
        raise ValueError(f"the {kind} {path!r} is a {type(found).__name__}, not a function")
    return found


@dataclass
class StepSpec:
    """What a step is made of: for each role the function's dotted path and its (hashed) config dict,
    the seed, and the runtime options per role (not hashed)."""

    dataset_fn: str
    dataset_config: Dict[str, Any]
    model_fn: str
    model_config: Dict[str, Any]
    trainer_fn: str
    trainer_config: Dict[str, Any]
    seed: int
    runtime: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_experiment(cls, experiment: Experiment, runtime: Optional[Mapping[str, Mapping[str, Any]]] = None) -> "StepSpec":
        """The spec of an experiment; ``runtime`` (``{role: {option: value}}``) wins over its configs' for
        the options each config has (a config class without progress bars gets no ``show_progress``)."""
        options = {role: dict(config.runtime_options()) for role, config in experiment.configs.items()}
        for role, values in (runtime or {}).items():
            known = options.get(role, {})
            known.update({name: value for name, value in values.items() if name in known})
        return cls(
            experiment.dataset.fn, experiment.dataset.to_dict(),
            experiment.model.fn, experiment.model.to_dict(),
            experiment.trainer.fn, experiment.trainer.to_dict(),
            seed=experiment.seed, runtime=options,
        )  # fmt: skip

    def config(self, role: str) -> Dict[str, Any]:
        """The keyword arguments of ``role``'s function: its config and the runtime options it has."""
        values = dict(getattr(self, f"{role}_config"))
        options = {k: v for k, v in self.runtime.get(role, {}).items() if k in RUNTIME_FIELDS[role]}
        values.update(options)
        return values

    @property
    def keep_checkpoints(self) -> bool:
        return bool(self.config("trainer").get("keep_checkpoints", False))

    @property
    def student_model(self) -> Optional[Dict[str, Any]]:
        """The original form's student model config (the trainer's ``student_model``), or None."""
        return self.trainer_config.get("student_model") or None

    def student(self) -> Tuple[str, Dict[str, Any]]:
        """``(model function, config)`` of the original form's student: the dict's ``fn`` where it names
        one (the original passed ``StudentModel().to_dict()``), else the step's model function."""
        config = {k: v for k, v in self.student_model.items() if k not in ("fn", "comment")}
        return self.student_model.get("fn") or self.model_fn, config

    def trained_model(self) -> Tuple[str, Dict[str, Any]]:
        """``(model function, config)`` the step's stored weights belong to: the student where the
        trainer has ``student_model`` (the original form), else the step's own model."""
        if self.student_model:
            return self.student()
        return self.model_fn, dict(self.model_config)

    @property
    def dataset_hash(self) -> str:
        return make_hash([self.dataset_fn, self.dataset_config])


#: prefixes of the names of handed-on arrays that are not per-example data
FISHER_PREFIX = "fisher/"
RECORD_PREFIX = "record/"


@dataclass
class Predecessor:
    """The previous step of a chain, as the next step uses it: its spec (to rebuild its model), its
    trained weights and what it handed on (or None)."""

    spec: StepSpec
    weights: Mapping[str, Any]
    handed_on: Optional[Mapping[str, Any]] = None

    def split(self) -> Tuple[Dict[str, Any], Dict[str, Any], Dict[str, Any]]:
        """``(per-example data, Fisher by parameter name, record)`` of what it handed on."""
        examples, fisher, record = {}, {}, {}
        for name, value in (self.handed_on or {}).items():
            if name.startswith(FISHER_PREFIX):
                fisher[name[len(FISHER_PREFIX):]] = value
            elif name.startswith(RECORD_PREFIX):
                record[name[len(RECORD_PREFIX):]] = value
            else:
                examples[name] = value
        return examples, fisher, record


@dataclass
class StepResult:
    """What one step produces. ``transfer_data`` (name -> array) is popped from the trainer's output."""

    score: float
    output: Dict[str, Any]
    model_state: Dict[str, Any]
    transfer_data: Optional[Dict[str, Any]] = None
    seconds: float = 0.0


def _accepts(fn: Callable, name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def run_step(
    spec: StepSpec,
    previous: Optional[Predecessor] = None,
    uid: Optional[Dict[str, Any]] = None,
    checkpoints: Optional[Callable] = None,
    data_transfer: bool = False,
    earlier_specs: Sequence[StepSpec] = (),
    meta: Optional[StepMeta] = None,
) -> StepResult:
    """Build data, student and teacher, train, collect what the step hands on (module docstring).
    ``data_transfer``: the data set receives the previous step's per-example data (the key's flag).
    ``earlier_specs``: the specs of the steps before this one in its chain, first to last; their test sets
    that this step's data do not test on are evaluated at the end too (:func:`earlier_test_sets`).
    ``meta``: who the step is (recipe name, seed, index, comment), for the name of its TensorBoard and MLflow
    runs (:func:`run_description`). A non-finite score (a diverged run) is a ``ValueError``."""
    started = time.time()
    dataset_fn = resolve_function(spec.dataset_fn, "dataset")
    model_fn = resolve_function(spec.model_fn, "model")
    trainer_fn = resolve_function(spec.trainer_fn, "trainer")
    trainer_config = spec.config("trainer")
    examples, fisher, record = previous.split() if previous is not None else ({}, {}, {})

    data_kwargs = spec.config("dataset")
    if data_transfer:
        if not examples:
            raise ValueError("this step sets data_transfer, but the previous step handed on no per-example data; "
                             "set compute_transfer_data=True in that step's trainer")
        data_kwargs["transfer_data"] = examples
    dataloaders = dataset_fn(seed=spec.seed, **data_kwargs)
    if data_transfer:
        check_alignment(record, spec, getattr(dataloaders, "train_ids", None), producer=previous.spec)

    teacher = None
    if spec.student_model:  # the original form: the step's model is the teacher
        if previous is None:
            raise ValueError("student_model: the step's model is the teacher and needs the previous step's weights; "
                             "put the step after the step that trains the teacher")
        teacher = build_trained_model(model_fn, spec.model_fn, spec.config("model"), dataloaders, spec.seed,
                                      previous.weights, "the teacher (this step's model config)")
        student_fn, student_config = spec.student()
        model = resolve_function(student_fn, "model")(dataloaders, seed=spec.seed, **student_config)
    else:
        model_kwargs = spec.config("model")
        if previous is not None and trainer_config.get("start_from_previous", True):
            if not _accepts(model_fn, "state_dict"):
                raise TypeError(f"{spec.model_fn} cannot take the previous step's weights (no 'state_dict' argument)")
            model_kwargs.update(state_dict=previous.weights, transfer=True)
        model = model_fn(dataloaders, seed=spec.seed, **model_kwargs)
        if trainer_config.get("teacher") == "previous":
            if previous is None:
                raise ValueError("teacher='previous' needs a previous step: put the step after the one that trains the teacher")
            teacher_fn, teacher_config = previous.spec.trained_model()
            teacher = build_trained_model(resolve_function(teacher_fn, "model"), teacher_fn, teacher_config, dataloaders,
                                          previous.spec.seed, previous.weights, "the teacher (the previous step's model)")

    if earlier_specs and isinstance(dataloaders, dict):  # after the models: they are built for the step's own data
        dataloaders.update(earlier_test_sets(spec, earlier_specs, dataloaders))
    extra: Dict[str, Any] = {}
    if teacher is not None:
        extra["teacher_model"] = teacher
    if fisher:
        extra["fisher"] = fisher
    for name in extra:
        if not _accepts(trainer_fn, name):
            raise TypeError(f"{spec.trainer_fn} cannot take a {name} (no {name!r} argument)")
    from nntransfer.trainer import run_info  # the trainer package imports torch

    with run_info.describing(run_description(spec, uid, meta)):
        score, output, model_state = trainer_fn(
            model=model, dataloaders=dataloaders, seed=spec.seed, uid=uid, cb=checkpoints, **extra, **trainer_config
        )
    score = float(score)
    if not math.isfinite(score):  # a NULL score would fail the store with an obscure error
        raise ValueError(f"the trainer returned a score of {score}: training diverged; lower the learning rate")
    produced = output.pop("transfer_data", None) if isinstance(output, dict) else None
    if produced:
        produced = dict(produced)
        if any(not name.startswith(FISHER_PREFIX) for name in produced):
            produced.update(handed_on_record(spec, getattr(dataloaders, "train_ids", None)))
    return StepResult(score, output, model_state, produced or None, seconds=round(time.time() - started, 3))


def run_description(spec: StepSpec, uid: Optional[Mapping[str, Any]], meta: Optional[StepMeta] = None):
    """What the trainer names its TensorBoard and MLflow runs after (``nntransfer.trainer.run_info``): the step's
    name (``"KD seed 1 step 1 fine-tune 5-9"``), its id (the hash of its key) and its settings (the hashed
    fields of its dataset, model and trainer configs, flattened, and the seed)."""
    from nntransfer.trainer import run_info

    configs = {role: {"fn": getattr(spec, f"{role}_fn"), **getattr(spec, f"{role}_config")} for role in ROLES}
    step_id = make_hash(dict(uid)) if uid else ""
    if meta is None:  # trained outside a store (nnfabrik's TrainedModel): the seed, and the step where the key has one
        step = (uid or {}).get("transfer_step")
        return run_info.for_step("", spec.seed, None if step is None else int(step), "", step_id, configs)
    seed = spec.seed if meta.seed is None else meta.seed
    return run_info.for_step(meta.name, seed, meta.step, meta.comment, step_id, configs)


def earlier_test_sets(spec: StepSpec, earlier_specs: Sequence[StepSpec], dataloaders: Mapping[str, Any]) -> Dict[str, Any]:
    """The test splits of the earlier steps of a chain that this step's own data do not test on, as
    ``{"step 0 test": loaders}``: a step trained on other data than an earlier step is also evaluated on
    that step's task, so that the step x test-set matrix of a continual-learning chain is complete.

    Candidates are the splits an earlier dataset config defines (``test``, ``test_rotated``, each
    ``test_transforms`` entry; not the corrupted ``c_test``, to keep it cheap), compared by test-set
    identity (``nntransfer.configs.test_sets``) with this step's splits and with one another. An earlier
    data set is built only when it has such a split, with its own function, config and seed (so that it
    is exactly the test set that step was evaluated on); one whose inputs or classes differ from this
    step's data cannot be evaluated by this model and is skipped with a warning, as is a data set that
    reports no ``DataInfo``."""
    from nntransfer.dataset.info import data_info  # torch only where data are built

    def defined_splits(config: Mapping[str, Any]) -> List[str]:
        transforms = config.get("test_transforms") or {}
        return ["test", "test_rotated", *(transforms if isinstance(transforms, Mapping) else ())]

    own = [*dataloaders, *defined_splits(spec.dataset_config)]
    seen = {split_identity(spec.dataset_config, split) for split in own} - {None}
    own_info = data_info(dataloaders)
    added: Dict[str, Any] = {}
    for level, other in enumerate(earlier_specs):
        wanted = {}
        for split in defined_splits(other.dataset_config):
            identity = split_identity(other.dataset_config, split)
            if identity is not None and identity not in seen:
                wanted[split] = identity
        if not wanted:
            continue
        try:
            loaders = resolve_function(other.dataset_fn, "dataset")(seed=other.seed, **other.config("dataset"))
        except Exception as err:  # an extra evaluation: the step itself trains all the same
            loaders, failure = {}, f"building them raised {type(err).__name__}: {err}"
        else:
            failure = ""
        info = data_info(loaders)
        if failure or own_info is None or info is None or \
                (info.input_shape, info.n_classes) != (own_info.input_shape, own_info.n_classes):
            reason = failure or ("a data set reports no DataInfo" if own_info is None or info is None else
                                 f"inputs {info.input_shape} with {info.n_classes} classes, this step's "
                                 f"{own_info.input_shape} with {own_info.n_classes} classes")
            logger.warning("step %d's test sets are not evaluated after this step (%s); the continual-learning "
                           "metrics leave them out", level, reason)
            continue
        for split, identity in wanted.items():
            if split in loaders:
                added[earlier_split(level, split)] = loaders[split]
                seen.add(identity)
    return added


def build_trained_model(model_fn: Callable, fn_name: str, config: Mapping[str, Any], dataloaders: Any, seed: int,
                        weights: Mapping[str, Any], what: str):
    """A trained model rebuilt from its function, config and weights; the weights must fit exactly
    (``ValueError`` naming what does not)."""
    import torch  # the step layer imports torch only where weights are handled

    model = model_fn(dataloaders, seed=seed, **config)
    state = {name: torch.as_tensor(value) for name, value in weights.items()}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(name for name in set(own) & set(state) if tuple(own[name].shape) != tuple(state[name].shape))
    if missing or unexpected or mismatched:
        problems = [f"{label} {names[:3]}{'...' if len(names) > 3 else ''}" for label, names in
                    (("missing", missing), ("unexpected", unexpected), ("shape differs", mismatched)) if names]
        raise ValueError(f"{what}: the stored weights do not fit the model {fn_name} builds from its config "
                         f"for this step's data ({'; '.join(problems)}); the data must have the teacher's input shape and classes")
    model.load_state_dict(state)
    return model


def handed_on_record(spec: StepSpec, train_ids: Optional[Any]) -> Dict[str, np.ndarray]:
    """The record that identifies the examples a step's per-example data belongs to."""
    record = {RECORD_PREFIX + "dataset_hash": np.array(spec.dataset_hash), RECORD_PREFIX + "seed": np.array(int(spec.seed))}
    if train_ids is not None:
        record[RECORD_PREFIX + "example_ids"] = np.asarray(train_ids, dtype=np.int64)
    return record


def check_alignment(record: Mapping[str, Any], spec: StepSpec, train_ids: Optional[Any],
                    producer: Optional[StepSpec] = None) -> None:
    """Refuse (one-line ``ValueError``) handed-on data that belongs to other examples than this step's
    training set, compared by example ids (``DataLoaders.train_ids``, which the built-in data sets report).
    A data set that does not report them is only checked by its row count; a differing data config or
    seed is then logged at WARNING. ``producer``: the spec of the step that handed the data on; a record of
    another data config or seed than that step's is not its data (the store holds another step's file), which
    no change to the recipe mends."""
    produced_ids = record.get("example_ids")
    source = f"dataset {str(record.get('dataset_hash', '?'))[:8]}, seed {record.get('seed', '?')}"
    own = f"dataset {spec.dataset_hash[:8]}, seed {spec.seed}"
    if producer is not None and "dataset_hash" in record and (
            str(record["dataset_hash"]) != producer.dataset_hash or int(record.get("seed", -1)) != int(producer.seed)):
        raise ValueError(
            f"data_transfer refused: the data stored as the previous step's hand-on was made from {source}, but that step "
            f"trains on dataset {producer.dataset_hash[:8]}, seed {producer.seed}: the store holds another step's data "
            "(a file copied over it?); delete the previous step with 'nntransfer forget' and run again to retrain it")
    if produced_ids is not None and train_ids is not None:
        produced_ids, train_ids = np.asarray(produced_ids), np.asarray(train_ids)
        if produced_ids.shape == train_ids.shape and np.array_equal(produced_ids, train_ids):
            return
        if produced_ids.shape == train_ids.shape and np.array_equal(np.sort(produced_ids), np.sort(train_ids)):
            raise ValueError(
                f"data_transfer refused: the previous step handed on data for the same {len(train_ids)} training examples "
                f"({source}) in another order than this step's ({own}), so its rows would go to the wrong examples; the "
                "data set orders its examples differently from when that step ran: delete the previous step with "
                "'nntransfer forget' and run again to retrain it")
        produced, own_ids = set(produced_ids.tolist()), set(train_ids.tolist())
        if produced == own_ids:
            raise ValueError(
                f"data_transfer refused: the previous step handed on {len(produced_ids)} rows ({source}) for the same "
                f"training examples that this step trains on as {len(train_ids)} ({own}), repeated differently; give "
                "both steps the same dataset config (subset, repeats) and seed")
        raise ValueError(
            f"data_transfer refused: the previous step handed on data for {len(produced_ids)} training examples "
            f"({source}), this step trains on {len(train_ids)} ({own}): {len(own_ids - produced)} of this step's "
            f"examples have no handed-on row and {len(produced - own_ids)} rows are for examples it does not train on, "
            "so the two differ; give both steps the same dataset config (split, subset, classes) and seed")
    if str(record.get("dataset_hash")) != spec.dataset_hash or int(record.get("seed", -1)) != int(spec.seed):
        # only the row count was checked (by the data set): say what could not be verified
        logger.warning("data_transfer: the previous step's data comes from %s, this step uses %s; the data set does not "
                       "report its example ids (DataLoaders.train_ids), so only the number of rows was checked", source, own)


def check_storable(spec: StepSpec) -> None:
    """Refuse (one-line ``ValueError``) to train a step for a store when its trainer runs a fast dev run: a
    result of a couple of batches must never be kept under the step's key."""
    if spec.config("trainer").get("fast_dev_run"):
        raise ValueError("the trainer option fast_dev_run is set: a fast dev run's result is never stored; "
                         "unset it, or check the recipe with 'nntransfer run --fast-dev-run', which stores nothing")


#: ids (the hash of the full key) of the steps this process trained and stored, in order
_TRAINED_HERE: List[str] = []


def trained_in_this_process() -> List[str]:
    """The ids of the steps this process trained and stored so far, in order: what a run's summary counts
    as trained by this run (a worker's, not the steps other workers stored meanwhile)."""
    return list(_TRAINED_HERE)


@dataclass
class StepMeta:
    """Who a stored step is, for people: recipe name, the seed it trains with, position in its chain, comment; and its
    ``provenance``, what the store records of what produced it (``nntransfer.provenance.RunProvenance.for_step``:
    versions, recipe path, commit and hash, the code fingerprint; filled in when the step trains if empty)."""

    name: str = ""
    seed: Optional[int] = None
    step: int = 0
    comment: str = ""
    experiment: Optional[Dict[str, Any]] = None  # the step's Experiment.to_dict(), where known
    provenance: Dict[str, Any] = field(default_factory=dict)


def train_and_store(
    store,
    spec: StepSpec,
    key: Dict[str, Any],
    previous_key: Optional[Dict[str, Any]],
    meta: StepMeta,
    earlier_specs: Sequence[StepSpec] = (),
) -> StepResult:
    """Train the step ``key`` of ``store`` (see module docstring) and save it. ``earlier_specs``: the specs
    of the steps before it in its chain, first to last. The previous step (``previous_key``, whose spec is
    the last of them) must be done; its weights, model and handed-on data are what this step may use
    (``Predecessor``); the earlier steps' test sets are evaluated too (:func:`earlier_test_sets`)."""
    if store.keeps_results:
        check_storable(spec)
    previous = None
    if previous_key is not None:
        if not earlier_specs:
            raise ValueError(f"step {key.get('transfer_step')}: the previous step's spec is needed to rebuild its model")
        previous = Predecessor(earlier_specs[-1], store.load_weights(previous_key), store.load_transfer_data(previous_key))
    if not meta.provenance:  # a step trained outside a run: its versions and code now
        classes = [config.get("config_class", "") for config in (meta.experiment or {}).values()
                   if isinstance(config, dict) and config.get("config_class")]
        meta = dataclasses.replace(meta, provenance=step_provenance(spec, classes))
    logger.info("training %s (seed %s) step %d: %s", meta.name, meta.seed, meta.step, meta.comment)
    result = run_step(spec, previous, uid=dict(key), checkpoints=store.checkpoints(key),
                      data_transfer=bool(key.get("data_transfer")), earlier_specs=earlier_specs, meta=meta)
    store.save(key, result, meta)
    if store.keeps_results:
        _TRAINED_HERE.append(make_hash(key))
    if not spec.keep_checkpoints:  # only now: a kill before the save resumes from them
        store.clear_checkpoints(key)
    logger.info("finished %s (seed %s) step %d: score %.4f in %.1fs", meta.name, meta.seed, meta.step, result.score, result.seconds)
    return result
