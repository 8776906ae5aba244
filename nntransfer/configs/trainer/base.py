"""`TrainerConfig`: settings every trainer reads."""

from nntransfer.configs.base import BaseConfig

#: values of ``TrainerConfig.teacher``
TEACHERS = (None, "previous")


class TrainerConfig(BaseConfig):
    """Base of trainer configs; stored in the nnfabrik ``Trainer`` table.

    Fields (what a step takes from the previous step of its chain):
        start_from_previous: the model starts from the previous step's trained weights (loaded leniently:
            what does not fit is skipped and logged at WARNING); False: it starts from its own initialisation.
        teacher: ``None``, or ``"previous"``: the previous step's trained model, rebuilt from that step's own
            model config and weights, frozen and in eval mode beside the student (``context.teacher``), for
            the main-loop modules that transfer from a teacher (distillation, RDL, attention, orbits...).
        student_model: the original nntransfer form of a teacher step: a model config, or its dict
            (``StudentModel().to_dict()``, as the original recipes wrote it), for the student; both are stored
            as the dict and hash the same. The step's own model config then builds the teacher, from the
            previous step's weights, and the student (stored as the step's model) is built from this config,
            from scratch, with the step's model function.
        data_transfer: this step receives the ``transfer_data`` the previous transfer step produced
            (the tables pass it to the dataset function). The first step of a chain cannot set it.
        main_loop_modules: names of the main-loop modules (see ``nntransfer.trainer.main_loop_modules``)
            the trainer dispatches to (before-events in this order, after-events in reverse); mixins append
            theirs in ``conditional_assignment``.
        keep_checkpoints: keep the checkpoints (table rows or local files) after training finished
            (a runtime option: not hashed).
        force_cpu: train on the CPU even when a GPU is available (a runtime option: not hashed).
    """

    config_name = "trainer"
    table = "Trainer"

    def __init__(self, **kwargs):
        self.set_defaults(
            start_from_previous=True,
            teacher=None,
            student_model=None,
            data_transfer=False,
            main_loop_modules=[],
            keep_checkpoints=False,
            force_cpu=False,
        )
        super().__init__(**kwargs)

    def conditional_assignment(self) -> None:
        super().conditional_assignment()
        if self.teacher not in TEACHERS:
            raise ValueError(f"{type(self).__name__}.teacher must be one of {TEACHERS}, got {self.teacher!r}")
        if isinstance(self.student_model, BaseConfig):  # stored as plain values, hashed with the trainer
            if self.student_model.config_name != "model":
                raise ValueError(f"{type(self).__name__}.student_model must be a model config, got {type(self.student_model).__name__}")
            self.student_model = self.student_model.to_dict()
        if isinstance(self.student_model, dict) and "comment" in self.student_model:
            # the original's to_dict() carried the description; it names no experiment
            self.student_model = {k: v for k, v in self.student_model.items() if k != "comment"}
        if self.student_model is not None and not isinstance(self.student_model, dict):
            raise ValueError(f"{type(self).__name__}.student_model must be a model config or its dict, got {self.student_model!r}")
        if self.student_model is not None and self.teacher is not None:
            raise ValueError(f"{type(self).__name__}: with student_model the step's own model is the teacher; leave teacher=None")

    def add_main_loop_module(self, name: str) -> None:
        """Append ``name`` to ``main_loop_modules`` unless it is there already (idempotent)."""
        if name not in self.main_loop_modules:
            self.main_loop_modules = list(self.main_loop_modules) + [name]
