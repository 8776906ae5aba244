"""Every name a recipe uses, its data and its models are checked before anything is written or trained.

For each config: its ``fn`` must import, and the function may carry a checker, ``fn.check_config(values)``
(``values``: the config's fields and runtime options), defined beside the implementation: the data set
loader checks ``dataset_cls`` against the data set registry, the model builder the model type, the
trainer the optimizer, losses, scheduler, cycler and main-loop modules. A problem is one ``ValueError``
line that names the config class, the field and what exists.

Then every field must be read by something: on a config whose ``fn`` is one of nntransfer's own functions,
a field that none of nntransfer's classes declare (the rule is ``BaseConfig``'s docstring: the library
classes in the config's hierarchy and those of its function, and for a trainer the mixins of its main-loop
modules) would be hashed and ignored, e.g. the original recipes' ``learning_rate``, ``total_steps``,
``regularization`` or ``train_shift`` (and so would a key of the original form's ``student_model`` dict that
its model function does not read; a trainer function of nntransfer's with fields of its own names them in
``fn.config_fields``). Each is one line naming the experiment, seed and step, the class, the
field and the closest field; all of them (each class and field once) are raised together as a
:class:`~nntransfer.errors.ChainCheckError`. A config whose ``fn`` is the user's own is not checked.

``preflight`` then checks every chain whole, for the steps still to train, before any result or failure
record is written (each distinct data set and model built once, on the CPU, untrained):

- the data loaders and the model build (a missing data file, ``lenet5`` on 8x8 images);
- the teacher (``teacher="previous"``: the previous step's model; the original form's step model) builds
  for the step's data, and the weights it will have, trained on the previous step's data, fit it;
- a step that starts from the previous step's weights with data of another number of classes resets
  the parameters that do not fit (its readout); ``reset`` and ``freeze`` name layers the model has;
- a step that receives the previous step's per-example data trains on the same examples;
- every main-loop module's ``check_step`` (``nntransfer.trainer.main_loop_modules.chain_check``) runs with
  the untrained student and teacher and one batch of the step's data: layer paths exist, the layers a
  method compares fit it, and the chain hands on what the method needs (a teacher, a Fisher, logits,
  an orbit);
- a trainer function with a checker of its own, ``fn.check_models(config, student, teacher)``, runs it on the
  untrained student and teacher (orbit_transfer's step loop: what its ``forward`` method needs of them).

Every problem is one line naming the experiment, seed and step; all of them are raised together as a
:class:`~nntransfer.errors.ChainCheckError`.
"""

from __future__ import annotations

import functools
import logging
from types import SimpleNamespace
from typing import Any, Callable, Dict, FrozenSet, List, Mapping, Optional, Set, Tuple

import numpy as np

from nntransfer.configs.base import BaseConfig
from nntransfer.configs.codec import make_hash
from nntransfer.configs.declared import declared_fields, library_config_classes, library_fields
from nntransfer.errors import ChainCheckError
from nntransfer.pipeline.step import StepSpec, resolve_function
from nntransfer.recipes.loading import Recipe
from nntransfer.registry import did_you_mean

logger = logging.getLogger(__name__)

#: examples of the first training batch that the preflight runs through a step's models
BATCH_EXAMPLES = 8


def check_config(config: BaseConfig) -> None:
    """Raise ``ValueError`` (one line) if ``config``'s function or a name it refers to does not exist."""
    name = type(config).__name__
    if not config.fn:
        raise ValueError(f"{name} names no function: set the class attribute fn = 'package.module.function'")
    try:
        function = resolve_function(config.fn, config.config_name)
    except ValueError as err:
        raise ValueError(f"{name}.fn: {err}") from None
    checker = getattr(function, "check_config", None)
    if checker is not None:
        try:
            checker({**config.to_dict(), **config.runtime_options()})
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None


#: fields of the original sinzlab recipes whose counterpart here has another name: what to write instead
ORIGINAL_COUNTERPARTS: Dict[Tuple[str, str], str] = {
    ("trainer", "total_steps"): "the training length is 'max_iter' (epochs)",
    ("trainer", "regularization"): (
        "a transfer method is a mixin of the trainer class here (KnowledgeDistillationMixin, RDLMixin, "
        "AttentionTransferMixin, LayerMatchingMixin, CKATransferMixin, ParameterDistanceMixin, OrbitLearningMixin, "
        "OrbitTransferMixin)"
    ),
    ("dataset", "train_shift"): "MNIST1DConfig takes it as dataset_kwargs={'train_shift': ...}",
}


def _is_builtin(function: Callable) -> bool:
    """Whether ``function`` is one of nntransfer's own (defined in the ``nntransfer`` package)."""
    module = getattr(function, "__module__", None) or ""
    return module == "nntransfer" or module.startswith("nntransfer.")


@functools.lru_cache(maxsize=None)
def _fields_of_functions() -> Dict[Callable, FrozenSet[str]]:
    """{nntransfer's function: the fields of nntransfer's config classes that name it in ``fn``}."""
    found: Dict[Callable, Set[str]] = {}
    for klass in library_config_classes():
        path = klass.__dict__.get("fn")
        if not path:
            continue
        try:
            function = resolve_function(path)
        except ValueError as err:  # an optional extra that is not installed
            logger.debug("%s.fn does not import: %s", klass.__name__, err)
            continue
        found.setdefault(function, set()).update(declared_fields(klass))
    return {function: frozenset(names) for function, names in found.items()}


def _module_mixins(config: BaseConfig) -> List[type]:
    """The ``config_mixin`` of every main-loop module ``config`` lists (a trainer's; none for other roles)."""
    from nntransfer.trainer.main_loop_modules import get as get_module

    mixins: List[type] = []
    for name in config.__dict__.get("main_loop_modules") or ():
        try:
            mixin = get_module(name).config_mixin
        except ValueError:  # an unknown module: check_config names it
            continue
        if mixin is not None and mixin not in mixins:
            mixins.append(mixin)
    return mixins


def fields_read(config: BaseConfig) -> Optional[FrozenSet[str]]:
    """The fields of ``config`` that its function reads, by ``BaseConfig``'s rule; None when its function is
    the user's own (it reads what it reads)."""
    function = resolve_function(config.fn, config.config_name)
    if not _is_builtin(function):
        return None
    names = set(library_fields(type(config))) | _fields_of_functions().get(function, frozenset())
    names |= getattr(function, "config_fields", frozenset())  # a function of nntransfer's with fields of its own
    for mixin in _module_mixins(config):
        names |= declared_fields(mixin)
    return frozenset(names)


def _hint(config: BaseConfig, field: str, read: FrozenSet[str]) -> str:
    """What to write instead of ``field``: the original recipes' counterpart, the mixin that declares it, the
    closest field read, or the field whose name is its initials (``learning_rate`` -> ``lr``)."""
    counterpart = ORIGINAL_COUNTERPARTS.get((config.config_name, field))
    if counterpart:
        return f"; {counterpart}"
    if config.config_name == "trainer":
        from nntransfer.trainer.main_loop_modules import available
        from nntransfer.trainer.main_loop_modules import get as get_module

        for name in available():
            mixin = get_module(name).config_mixin
            if mixin is not None and field in declared_fields(mixin):
                return f"; it is a field of {mixin.__name__}: derive {type(config).__name__} from it"
    hint = did_you_mean(field, read)
    if hint:
        return hint
    initials = "".join(word[0] for word in field.split("_") if word)
    return f"; did you mean {initials!r}?" if len(initials) > 1 and initials in read else ""


def unread_fields(config: BaseConfig) -> List[str]:
    """One line per field of ``config`` that its function does not read (``BaseConfig``'s rule): the class,
    the field, the closest field and what to do. Empty for a config whose function is the user's own."""
    read = fields_read(config)
    if read is None:
        return []
    name = type(config).__name__
    lines = []
    for field in config.field_names():
        if field not in read:
            hint = _hint(config, field, read)
            lines.append(
                f"{name}.{field} is read by nothing ({config.fn} reads only the fields of nntransfer's own "
                f"{config.config_name} classes and mixins){hint}{'' if hint.endswith('?') else '.'} Remove it, or "
                f"name a function of your own that reads it in {name}.fn"
            )
    return lines + _unread_student_fields(config)


def _unread_student_fields(config: BaseConfig) -> List[str]:
    """The original form's ``student_model`` dict (a model config's ``to_dict()``): its keys that the model
    function it names does not read, when that function is nntransfer's (the dict has lost its class, so the
    fields of nntransfer's model classes of that function are what is read)."""
    student = config.__dict__.get("student_model")
    if not isinstance(student, dict) or not isinstance(student.get("fn"), str):
        return []
    try:
        function = resolve_function(student["fn"], "model")
    except ValueError:
        return []  # the trainer's checker names a model function that does not import
    read = _fields_of_functions().get(function) if _is_builtin(function) else None
    if read is None:
        return []
    name = type(config).__name__
    lines = []
    for key in student:
        if key not in read:
            hint = did_you_mean(key, read)
            lines.append(
                f"{name}.student_model[{key!r}] is read by nothing ({student['fn']} reads only the fields of "
                f"nntransfer's own model classes){hint}{'' if hint else '.'} Remove it from the student's model "
                "config, or name a function of your own that reads it in its fn"
            )
    return lines


def validate_recipe(recipe: Recipe) -> None:
    """Check every config of every step of ``recipe`` (each distinct config once): its names
    (:func:`check_config`, a ``ValueError`` at the first problem), then that its function reads every field
    (:func:`unread_fields`; a :class:`~nntransfer.errors.ChainCheckError` with each class and field once)."""
    if not recipe.transfer_experiments:
        raise ValueError(f"recipe {recipe.name} defines no experiments")
    seen: Set[str] = set()
    problems: List[str] = []
    reported: Set[Tuple[type, str]] = set()
    for description, chain in recipe.transfer_experiments.items():
        for level, step in enumerate(chain):
            label = f"experiment {description.name!r} (seed {description.seed}) step {level}"
            for config in step.configs.values():
                marker = type(config).__qualname__ + make_hash(config.to_dict())
                if marker in seen:
                    continue
                check_config(config)
                seen.add(marker)
                for line in unread_fields(config):
                    key = (type(config), line.split(" ", 1)[0])
                    if key not in reported:
                        reported.add(key)
                        problems.append(f"{label}: {line}")
    if problems:
        raise ChainCheckError(problems)


def preflight(
    recipe: Recipe,
    runtime: Optional[Mapping[str, Mapping[str, Any]]] = None,
    needs_training: Optional[Callable[[Dict[str, Any]], bool]] = None,
) -> None:
    """Check every step still to train (``needs_training(step key)``; all steps if None) as the module
    docstring says; :class:`~nntransfer.errors.ChainCheckError` with one line per problem, all of them.
    Nothing is trained and nothing is written."""
    checker = _ChainChecker(runtime)
    pending = 0
    for description, chain in recipe.transfer_experiments.items():
        for level, step in enumerate(chain):
            if needs_training is not None and not needs_training(chain.step_key(level)):
                continue
            pending += 1
            label = f"experiment {description.name!r} (seed {description.seed}) step {level}"
            previous = chain[level - 1] if level else None
            checker.check_step(label, step, previous, bool(chain.step_key(level).get("data_transfer")))
    if checker.problems:
        raise ChainCheckError(checker.problems)
    if pending:
        logger.info("checked the data, models and transfer methods of %d step(s) before training", pending)


class _ChainChecker:
    """Builds what the checks need, each distinct data set and model once, and collects the problems."""

    def __init__(self, runtime: Optional[Mapping[str, Mapping[str, Any]]]) -> None:
        self.runtime = runtime
        self.problems: List[str] = []
        self.data: Dict[str, Any] = {}
        self.models: Dict[str, Any] = {}
        self.batches: Dict[str, Any] = {}

    def problem(self, label: str, line: str) -> None:
        line = f"{label}: {line}"
        if line not in self.problems:
            self.problems.append(line)

    def data_of(self, spec: StepSpec, label: str, exact: bool = False) -> Any:
        """The data loaders of ``spec`` (None: they do not build, reported); built once per config (any seed
        shows whether it builds), ``exact``: for this seed (its examples)."""
        config_hash = make_hash([spec.dataset_fn, spec.config("dataset")])
        seeded = make_hash([config_hash, spec.seed])
        if seeded in self.data or (not exact and config_hash in self.data):
            return self.data[seeded if seeded in self.data else config_hash]
        found = self.attempt(label, "data", lambda: resolve_function(spec.dataset_fn)(seed=spec.seed, **spec.config("dataset")))
        self.data.setdefault(config_hash, found)
        self.data[seeded] = found  # the same build serves an exact lookup
        return found

    def model_of(self, spec: StepSpec, fn: str, config: Dict[str, Any], data_spec: StepSpec, label: str, what: str) -> Any:
        """The untrained model ``fn(**config)`` for the data of ``data_spec`` (None: it does not build, reported)."""
        marker = make_hash([fn, config, make_hash([data_spec.dataset_fn, data_spec.config("dataset")])])
        if marker not in self.models:
            data = self.data_of(data_spec, label)
            self.models[marker] = None if data is None else self.attempt(
                label, what, lambda: resolve_function(fn)(data, seed=spec.seed, **config))
        return self.models[marker]

    def batch_of(self, spec: StepSpec, data: Any, label: str) -> Any:
        """A few examples of the first training batch of ``spec``'s data (None: none can be read, reported)."""
        marker = make_hash([spec.dataset_fn, spec.config("dataset")])
        if marker not in self.batches:
            def first_inputs():
                from nntransfer.models.builder import train_loader

                batch = next(iter(train_loader(data)))
                inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
                return inputs[:BATCH_EXAMPLES]

            self.batches[marker] = self.attempt(label, "first training batch", first_inputs)
        return self.batches[marker]

    def attempt(self, label: str, what: str, build: Callable[[], Any]) -> Any:
        try:
            return build()
        except Exception as err:  # a missing file, a model that does not fit its input, a bad option
            message = str(err).splitlines()[0] if str(err) else type(err).__name__
            self.problem(label, f"cannot build its {what}: {message}")
            return None

    def check_step(self, label: str, step: Any, previous_step: Any, data_transfer: bool) -> None:
        spec = StepSpec.from_experiment(step, self.runtime)
        previous = StepSpec.from_experiment(previous_step, self.runtime) if previous_step is not None else None
        data = self.data_of(spec, label)
        if data is None:
            return
        trainer = spec.trainer_config
        model = self.model_of(spec, spec.model_fn, spec.config("model"), spec, label, "model")
        student, teacher = model, None
        if spec.student_model:  # the original form: the step's model is the teacher
            student = self.model_of(spec, *spec.student(), spec, label, "student model")
            teacher = model
            if previous is None:
                self.problem(label, "student_model: the step's model is the teacher and needs the previous step's weights; "
                             "put the step after the step that trains the teacher")
            elif model is not None:
                self.check_teacher_weights(label, spec, previous, model, "the teacher (this step's model config)")
        elif trainer.get("teacher") == "previous":
            if previous is None:
                self.problem(label, "teacher='previous' needs a previous step: put the step after the one that trains the teacher")
            else:
                teacher = self.model_of(previous, *previous.trained_model(), spec, label,
                                        "teacher (the previous step's model) for its data")
                if teacher is not None:
                    self.check_teacher_weights(label, spec, previous, teacher, "the teacher (the previous step's model)")
        if previous is not None and not spec.student_model and trainer.get("start_from_previous", True) and model is not None:
            self.check_start(label, spec, previous, model)
        if student is not None:
            from nntransfer.models.utils import select_parameters

            for field in ("reset", "freeze"):
                if trainer.get(field):
                    try:
                        select_parameters(student, trainer[field], field)
                    except ValueError as err:
                        self.problem(label, str(err))
        if data_transfer and previous is not None:
            self.compare_examples(label, spec, previous)
        self.check_modules(label, spec, previous, student, teacher, data)
        self.check_trainer_models(label, spec, student, teacher)

    def check_trainer_models(self, label: str, spec: StepSpec, student: Any, teacher: Any) -> None:
        """The trainer function's own check of the untrained student and teacher, where it has one
        (``fn.check_models(config, student, teacher)``, a ``ValueError`` per problem)."""
        checker = getattr(resolve_function(spec.trainer_fn, "trainer"), "check_models", None)
        if checker is None or student is None:
            return
        try:
            checker(spec.trainer_config, student, teacher)
        except ValueError as err:
            self.problem(label, str(err).splitlines()[0])

    def check_teacher_weights(self, label: str, spec: StepSpec, previous: StepSpec, teacher: Any, what: str) -> None:
        """The weights the teacher will load (the previous step's model, trained on its data) fit exactly."""
        trained = self.model_of(previous, *previous.trained_model(), previous, label, "previous step's model")
        if trained is None:
            return
        own, theirs = teacher.state_dict(), trained.state_dict()
        wrong = sorted(set(own) ^ set(theirs)) + sorted(n for n in set(own) & set(theirs) if own[n].shape != theirs[n].shape)
        if wrong:
            classes = self.class_counts(spec, previous)
            self.problem(label, f"{what} cannot load its trained weights: {_names(wrong)} differ between the model trained "
                         f"on the previous step's data and the one built for this step's data{classes}; give the step data "
                         "with the teacher's input shape and classes")

    def n_classes(self, spec: StepSpec) -> Optional[int]:
        from nntransfer.models.builder import input_shape_and_classes

        data = self.data_of(spec, "")
        try:
            return input_shape_and_classes(data)[1] if data is not None else None
        except Exception:  # data of the user's own making that tells no class count: nothing to compare
            return None

    def class_counts(self, spec: StepSpec, previous: StepSpec) -> str:
        """`` (trained for N classes, this step's data has M)`` where the two steps' data differ in classes, else ""."""
        own, theirs = self.n_classes(spec), self.n_classes(previous)
        if theirs is None or own is None or theirs == own:
            return ""
        return f" (trained for {theirs} classes, this step's data has {own})"

    def check_start(self, label: str, spec: StepSpec, previous: StepSpec, model: Any) -> None:
        """Starting from the previous step's weights with another number of classes: the parameters that do
        not fit (the readout) must be reset, else the step would silently keep their initial values."""
        trained = self.model_of(previous, *previous.trained_model(), previous, label, "previous step's model")
        if trained is None:
            return
        theirs = {name: p.shape for name, p in trained.named_parameters()}
        differ = [name for name, p in model.named_parameters() if name in theirs and theirs[name] != p.shape]
        classes = self.class_counts(spec, previous) if differ else ""
        if not classes:
            return
        from nntransfer.models.utils import select_parameters

        reset = spec.trainer_config.get("reset") or []
        try:
            covered = set(select_parameters(model, reset, "reset")) if reset else set()
        except ValueError:
            return  # reported with the step's other reset problems
        left = [name for name in differ if name not in covered]
        if left:
            self.problem(label, f"starts from the previous step's weights{classes}, but {_names(left)} would not be "
                         "loaded and keep their initial values; reset them (e.g. reset=['readout'] for a new readout) "
                         "or set start_from_previous=False")

    def compare_examples(self, label: str, spec: StepSpec, previous: StepSpec) -> None:
        own = getattr(self.data_of(spec, label, exact=True), "train_ids", None)
        theirs = getattr(self.data_of(previous, label, exact=True), "train_ids", None)
        if own is None or theirs is None:
            return  # a data set that does not report its examples is checked when the data arrives
        own, theirs = np.asarray(own), np.asarray(theirs)
        if own.shape != theirs.shape or not np.array_equal(own, theirs):
            differ = len(set(own.tolist()) - set(theirs.tolist()))
            self.problem(label, f"data_transfer refused: it trains on {len(own)} examples, the previous step hands on data "
                         f"for {len(theirs)}, and {differ} differ; give both steps the same dataset config (split, subset, "
                         "classes) and seed")

    def check_modules(self, label: str, spec: StepSpec, previous: Optional[StepSpec], student: Any, teacher: Any,
                      data: Any) -> None:
        """Every configured main-loop module's ``check_step`` on the untrained models and one batch."""
        from nntransfer.trainer.main_loop_modules import get as get_module
        from nntransfer.trainer.main_loop_modules.chain_check import PreviousStep, StepCheck

        names = spec.trainer_config.get("main_loop_modules") or []
        if not names:
            return
        handed_on = None
        if previous is not None:
            handed_on = PreviousStep(hands_on_logits=bool(previous.trainer_config.get("compute_transfer_data")),
                                     hands_on_fisher=bool(previous.trainer_config.get("compute_fisher")))
        step = StepCheck(SimpleNamespace(**spec.trainer_config), student, teacher, self.batch_of(spec, data, label),
                         handed_on)
        for name in names:
            get_module(name).check_step(step)
        for line in step.problems:
            self.problem(label, line)


def _names(names: List[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
