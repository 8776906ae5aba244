"""Writes small recipe folders (real packages on disk) for runner, CLI and worker tests."""

import textwrap
from pathlib import Path

TOY_MODULE = '''
from nntransfer.configs import Description, Experiment, TransferExperiment
from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig

SLEEP = {sleep}
EPOCHS = {epochs}


def chain(name, seed, increments):
    steps = [
        Experiment(ToyDatasetConfig(), ToyModelConfig(init=0.5),
                   ToyTrainerConfig(increment=inc, sleep=SLEEP, epochs=EPOCHS, compute_transfer_data=True,
                                    data_transfer=i > 0),
                   seed=seed, comment=f"{{name}}-{{i}}")
        for i, inc in enumerate(increments)
    ]
    return TransferExperiment(steps)


transfer_experiments = {{
    Description(name=f"toy{{i}}", seed=s): chain(f"toy{{i}}", s, [1.0 + i, 2.0])
    for i in range({chains}) for s in (1,)
}}
'''


def write_toy_recipe(root: Path, name: str = "toyrecipe", chains: int = 2, sleep: float = 0.0, epochs: int = 1) -> Path:
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text("")
    (folder / "chains.py").write_text(textwrap.dedent(TOY_MODULE.format(sleep=sleep, epochs=epochs, chains=chains)))
    (folder / "empty.py").write_text("x = 1\n")
    return folder


def write_recipe(root: Path, name: str, code: str) -> Path:
    """A recipe package ``<root>/<name>`` whose ``__init__`` is ``code``."""
    folder = Path(root) / name
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text(code)
    return folder
