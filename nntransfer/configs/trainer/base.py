"""`TrainerConfig`: settings every trainer reads."""

from nntransfer.configs.base import BaseConfig


class TrainerConfig(BaseConfig):
    """Base of trainer configs; stored in the nnfabrik ``Trainer`` table.

    Fields:
        data_transfer: this step receives the ``transfer_data`` the previous transfer step produced
            (the tables pass it to the dataset function). The first step of a chain cannot set it.
        main_loop_modules: names of the main-loop modules (see ``nntransfer.trainer.main_loop_modules``)
            the trainer dispatches to, in order; mixins append theirs in ``conditional_assignment``.
            The output unwrapper always runs last, whether listed or not.
        keep_checkpoints: keep the checkpoints (table rows or local files) after training finished
            (a runtime option: not hashed).
        force_cpu: train on the CPU even when a GPU is available (a runtime option: not hashed).
    """

    config_name = "trainer"
    table = "Trainer"

    def __init__(self, **kwargs):
        self.set_defaults(
            data_transfer=False,
            main_loop_modules=[],
            keep_checkpoints=False,
            force_cpu=False,
        )
        super().__init__(**kwargs)

    def add_main_loop_module(self, name: str) -> None:
        """Append ``name`` to ``main_loop_modules`` unless it is there already (idempotent)."""
        if name not in self.main_loop_modules:
            self.main_loop_modules = list(self.main_loop_modules) + [name]
