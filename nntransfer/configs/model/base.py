"""`ModelConfig`: settings every model builder reads."""

from nntransfer.configs.base import BaseConfig


class ModelConfig(BaseConfig):
    """Base of model configs; stored in the nnfabrik ``Model`` table.

    Fields:
        transfer: the model is initialised from a previous step's weights (the tables set this when they
            pass a state dict; loading is then lenient about missing keys and shape mismatches).
    """

    config_name = "model"
    table = "Model"

    def __init__(self, **kwargs):
        self.set_defaults(
            transfer=False,
        )
        super().__init__(**kwargs)
