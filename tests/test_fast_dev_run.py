"""``run --fast-dev-run``: every pending step of a recipe for a couple of batches (scikit-learn's digits),
handing on what the chain needs, storing nothing, and reporting the steps that broke."""

import logging
import os
import uuid
from pathlib import Path

import pytest
import torch
from recipe_factory import write_recipe

import nntransfer
from nntransfer.cli.main import EXIT_BAD_INPUT, EXIT_FAILED_JOBS, main
from nntransfer.configs import ClassificationModelConfig, ClassificationTrainerConfig, ImageDatasetConfig
from nntransfer.configs.codec import make_hash
from nntransfer.dataset import img_dataset_loader
from nntransfer.models import classification_model_builder
from nntransfer.pipeline.fast_dev_run import BROKE, PASSED, STORED
from nntransfer.recipes.loading import load_recipe
from nntransfer.trainer import classification_trainer
from nntransfer.trainer.main_loop_modules import MainLoopModule, register

# A teacher that hands on its logits; a KD student (teacher in the loop) that also receives them; and, in
# a second chain from the same teacher, a student whose main-loop module breaks in its first optimizer step.
RECIPE = """
from nntransfer.configs import (ClassificationModelConfig, ClassificationTrainerConfig, Description, Experiment,
                                ImageDatasetConfig, KnowledgeDistillationMixin, TransferExperiment)
from nntransfer.trainer.main_loop_modules import MainLoopModule, register


@register(name="BreaksWhenItSteps{tag}")  # a name of its own in every recipe the tests load
class BreaksWhenItSteps(MainLoopModule):
    def post_optimizer(self, model):
        raise RuntimeError("broken on purpose")


class Distillation(KnowledgeDistillationMixin, ClassificationTrainerConfig):
    pass


DIGITS = ImageDatasetConfig(dataset_cls="Digits", train_subset=0.25, batch_size=32)
QUIET = dict(show_progress=False, show_epoch_progress=False)
teacher = Experiment(DIGITS, ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[32]),
                     ClassificationTrainerConfig(max_iter={teacher_epochs}, compute_transfer_data=True, **QUIET),
                     seed=1, comment="teacher")
student = Experiment(DIGITS, ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[16]),
                     Distillation(max_iter=500, teacher="previous", start_from_previous=False, data_transfer=True,
                                  kd_weight=0.5, **QUIET), seed=1, comment="kd student")
broken = Experiment(DIGITS, ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[8]),
                    ClassificationTrainerConfig(max_iter=500, main_loop_modules=["BreaksWhenItSteps{tag}"], **QUIET),
                    seed=1, comment="broken student")
transfer_experiments = {{
    Description("teacher", 1): TransferExperiment([teacher]),
    Description("kd", 1): TransferExperiment([teacher, student]),
}}
if {with_broken}:
    transfer_experiments[Description("broken", 1)] = TransferExperiment([teacher, broken])
"""


def recipe_code(**values):
    return RECIPE.format(tag=uuid.uuid4().hex[:8], **values)


def snapshot(folder):
    """Every path under ``folder`` with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in Path(folder).rglob("*")}


def test_a_kd_chain_with_data_transfer_is_checked_in_seconds_and_stores_nothing(tmp_path, capsys, caplog):
    recipe = write_recipe(tmp_path, f"fdr_{uuid.uuid4().hex[:6]}", recipe_code(teacher_epochs=500, with_broken=False))
    workdir = tmp_path / "work"
    caplog.set_level(logging.INFO, logger="nntransfer")
    assert main(["run", str(recipe), "--workdir", str(workdir), "--fast-dev-run", "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[:4] for line in out[1:4]] == [["teacher", "1", "0", PASSED], ["kd", "1", "0", PASSED], ["kd", "1", "1", PASSED]]
    # the teacher is one step, however many chains share it
    assert "fast dev run (2 batches per loop): 2 checked, 0 broke" in out[-1] and out[-1].endswith("nothing was stored")
    assert not workdir.exists()  # no work folder created
    epochs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert len(epochs) == 2 and all(m.startswith("epoch 1:") for m in epochs)  # one epoch each, of 500


def test_pending_steps_read_their_stored_predecessor_and_a_broken_step_is_reported(tmp_path, capsys):
    recipe = write_recipe(tmp_path, f"fdr_{uuid.uuid4().hex[:6]}", recipe_code(teacher_epochs=1, with_broken=True))
    workdir = tmp_path / "work"
    assert main(["run", str(recipe), "--workdir", str(workdir), "--chain", "teacher", "--quiet"]) == 0
    before = snapshot(workdir)
    capsys.readouterr()
    assert main(["run", str(recipe), "--workdir", str(workdir), "--fast-dev-run", "--quiet"]) == EXIT_FAILED_JOBS
    out = capsys.readouterr().out.splitlines()
    states = {(line.split()[0], int(line.split()[2])): line.split()[3] for line in out[1:6]}
    assert states == {("teacher", 0): STORED, ("kd", 0): STORED, ("kd", 1): PASSED, ("broken", 0): STORED, ("broken", 1): BROKE}
    broke = [line for line in out if line.startswith("broke:")]
    assert len(broke) == 1 and broke[0].startswith("broke: broken (seed 1) step 1 [")
    chains = {d.name: chain for d, chain in load_recipe(str(recipe)).transfer_experiments.items()}
    broken_id = make_hash(chains["broken"].step_key(1))[:8]  # each row has the step's id, as run and status print it
    assert broke[0].startswith(f"broke: broken (seed 1) step 1 [{broken_id}]")
    assert broke[0].endswith("RuntimeError: broken on purpose")
    assert "2 checked, 1 broke, 1 stored (not run)" in out[-1]
    assert snapshot(workdir) == before  # the work folder is read, never changed

    # in Python: the same, as rows; nothing pending in a selection is said, not run
    result = nntransfer.run(str(recipe), workdir=str(workdir), chains=["teacher"], fast_dev_run=True, progress=False)
    assert [row.state for row in result] == [STORED] and result.summary.checked == 0 and not result.broken
    assert snapshot(workdir) == before


@pytest.mark.database
def test_a_fast_dev_run_on_the_tables_writes_no_rows(tables, db_prefix, tmp_path, capsys):
    from nntransfer.tables import activate, database

    recipe = write_recipe(tmp_path, f"fdr_dj_{uuid.uuid4().hex[:6]}", recipe_code(teacher_epochs=500, with_broken=False))
    schema = f"{db_prefix}_fdr_{uuid.uuid4().hex[:6]}"
    try:
        assert main(["run", str(recipe), "--schema", schema, "--fast-dev-run", "--quiet"]) == 0
        assert not database.schema_exists(database.connect(), schema)  # not even created
    finally:
        activate(f"{db_prefix}_main")


@register
class CountsBatches(MainLoopModule):
    """Counts the batches it sees per mode (Training, Validation, Test); ``SEEN`` has the counts after each loop."""

    SEEN = []

    def __init__(self, trainer):
        super().__init__(trainer)
        self.batches = {}

    def post_forward(self, state):
        self.batches[state.mode] = self.batches.get(state.mode, 0) + 1

    def post_epoch(self, mode):
        CountsBatches.SEEN.append(dict(self.batches))


def test_the_trainer_option_limits_every_loop_and_writes_no_checkpoints(tmp_path):
    data = ImageDatasetConfig(dataset_cls="Digits", batch_size=16,
                              test_transforms={"test_noisy": {"transform": "gaussian_noise", "std": 0.1}})
    loaders = img_dataset_loader(seed=1, **data.to_dict())
    model = classification_model_builder(loaders, seed=1, **ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[8]).to_dict())
    config = ClassificationTrainerConfig(max_iter=50, main_loop_modules=["CountsBatches"], compute_fisher=True,
                                         checkpoint_dir=str(tmp_path / "checkpoints"), show_progress=False, fast_dev_run=3)
    CountsBatches.SEEN.clear()
    score, output, _ = classification_trainer(model, loaders, seed=1, **config.to_dict(), **config.runtime_options())
    assert output["epochs"] == 1 and torch.isfinite(torch.tensor(score))
    assert CountsBatches.SEEN[0] == {"Training": 3}  # 3 training batches of many
    evaluated = [split for split in loaders if split != "train"]
    assert "test_noisy" in evaluated
    assert CountsBatches.SEEN[-1] == {"Training": 3, "Validation": 3, "Test": 3 * len(evaluated)}  # 3 per split
    assert output["transfer_data"] and all(name.startswith("fisher/") for name in output["transfer_data"])
    assert not os.path.exists(tmp_path / "checkpoints")


def test_a_fast_dev_run_needs_a_trainer_that_can_be_limited_and_is_never_stored(tmp_path, capsys):
    toy = write_recipe(tmp_path, f"fdr_toy_{uuid.uuid4().hex[:6]}", (
        "from nntransfer.configs import Experiment\n"
        "from toy_steps import ToyDatasetConfig, ToyModelConfig, ToyTrainerConfig\n"
        "experiments = [Experiment(ToyDatasetConfig(), ToyModelConfig(), ToyTrainerConfig(), seed=1, comment='toy')]\n"))
    assert main(["run", str(toy), "--workdir", str(tmp_path / "w"), "--fast-dev-run"]) == EXIT_BAD_INPUT
    assert "has no runtime option fast_dev_run" in capsys.readouterr().err
    recipe = write_recipe(tmp_path, f"fdr_set_{uuid.uuid4().hex[:6]}", recipe_code(teacher_epochs=1, with_broken=False))
    with pytest.raises(ValueError, match="teacher \\(seed 1\\) step 0: the trainer option fast_dev_run is set"):
        nntransfer.run(str(recipe), workdir=str(tmp_path / "w2"), runtime={"trainer": {"fast_dev_run": 2}}, progress=False)
    assert not (tmp_path / "w2").exists()
