"""A chain is checked whole before anything trains (issue 19, point 3): every fault below used to be found
only after the teacher (and, for the orbit, the orbit) had trained and been stored. The preflight builds
each pending step's student and teacher untrained, runs a few examples of one batch of the step's real
data (scikit-learn's digits) through both with the transfer methods' layer requests, and refuses the run
with one line per problem, naming the step: nothing is trained and nothing is written."""

import textwrap
import uuid

import pytest

import nntransfer
from nntransfer.cli.main import EXIT_BAD_INPUT, main
from nntransfer.configs import (
    AttentionTransferMixin,
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Experiment,
    ImageDatasetConfig,
    KnowledgeDistillationMixin,
    LayerMatchingMixin,
    ParameterDistanceMixin,
    RDLMixin,
    TransferExperiment,
)
from nntransfer.configs.model.orbit import OrbitConfig
from nntransfer.configs.trainer.orbit import OrbitLearningMixin, OrbitTransferMixin
from nntransfer.errors import ChainCheckError
from nntransfer.pipeline.validation import preflight
from nntransfer.recipes.loading import as_recipe

DIGITS = ImageDatasetConfig(dataset_cls="Digits", train_subset=0.25, batch_size=64)
DIGITS_12 = ImageDatasetConfig(dataset_cls="Digits", train_subset=0.25, batch_size=64, input_size=12)
DIGITS_0TO4 = ImageDatasetConfig(dataset_cls="Digits", train_subset=0.25, batch_size=64, filter_classes=(0, 5))
MLP = ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[16])
MLP_32 = ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[32])
MLP_10 = ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[10])
LENET = ClassificationModelConfig(type="lenet5")  # on 12x12: maps of 12x12 (core.layer1), 6x6 (core.pool1), 2x2 (core.layer2)
ORBIT = OrbitConfig(group_size=4)


class Distillation(KnowledgeDistillationMixin, ClassificationTrainerConfig):
    pass


class Rdl(RDLMixin, ClassificationTrainerConfig):
    pass


class Attention(AttentionTransferMixin, ClassificationTrainerConfig):
    pass


class Matching(LayerMatchingMixin, ClassificationTrainerConfig):
    pass


class Regularised(ParameterDistanceMixin, ClassificationTrainerConfig):
    pass


class LearnOrbit(OrbitLearningMixin, ClassificationTrainerConfig):
    pass


class UseOrbit(OrbitTransferMixin, ClassificationTrainerConfig):
    pass


def quick(cls=ClassificationTrainerConfig, **kwargs):
    return cls(max_iter=1, show_progress=False, show_epoch_progress=False, **kwargs)


def chain(*steps):
    """A chain of ``(data, model, trainer)`` steps, seed 1, named after the test case."""
    return TransferExperiment([Experiment(data, model, trainer, seed=1, comment=f"s{i}")
                               for i, (data, model, trainer) in enumerate(steps)])


def teacher_then(data, student_model, student_trainer, teacher_model=MLP_32, teacher_data=None):
    return chain((teacher_data or data, teacher_model, quick()), (data, student_model, student_trainer))


def student(cls, **kwargs):
    return quick(cls, teacher="previous", start_from_previous=False, **kwargs)


FAULTS = {
    "attention: unknown student layer (did you mean)": (
        lambda: teacher_then(DIGITS_12, LENET, student(Attention, at_layers={"core.layr1": "core.layer1"}), LENET),
        1, ["AttentionTransfer (at_layers): the student's CoreReadoutModel has no layer 'core.layr1'; did you mean 'core.layer1'?"],
    ),
    "rdl: unknown teacher layer": (
        lambda: teacher_then(DIGITS, MLP, student(Rdl, rdl_layers={"core": "core.fc9"})),
        1, ["RDL (rdl_layers): the teacher's CoreReadoutModel has no layer 'core.fc9'; did you mean 'core.fc1'?"],
    ),
    "matching: layers of different sizes": (
        lambda: teacher_then(DIGITS, MLP, student(Matching, match_layers={"core": "core"})),
        1, ["LayerMatching (match_layers): layer_matching_loss: the student's layer (8, 16) has 16 values per example, "
            "the teacher's (8, 32) 32"],
    ),
    "attention: maps of different spatial size": (
        lambda: teacher_then(DIGITS_12, LENET, student(Attention, at_layers={"core.layer1": "core.layer2"}), LENET),
        1, ["AttentionTransfer (at_layers): attention transfer: the student's map (8, 6, 12, 12) has 144 positions, "
            "the teacher's (8, 16, 2, 2) 4"],
    ),
    "attention: flat student layer that is no multiple of the teacher's positions": (
        lambda: teacher_then(DIGITS_12, MLP_10, student(Attention, at_layers={"core.fc1": "core.pool1"}), LENET),
        1, ["AttentionTransfer (at_layers): a flat representation of 10 values cannot be read as channels x 36 positions"],
    ),
    "kd: teacher trained for other classes than the student's data": (
        lambda: teacher_then(DIGITS, MLP, student(Distillation), teacher_data=DIGITS_0TO4),
        1, ["the teacher (the previous step's model) cannot load its trained weights: readout.fc.bias, readout.fc.weight "
            "differ", "(trained for 5 classes, this step's data has 10)"],
    ),
    "start_from_previous: other classes and no reset readout": (
        lambda: chain((DIGITS_0TO4, MLP, quick()), (DIGITS, MLP, quick())),
        1, ["starts from the previous step's weights (trained for 5 classes, this step's data has 10), but readout.fc.weight, "
            "readout.fc.bias would not be loaded", "reset=['readout']"],
    ),
    "rdl without a teacher": (
        lambda: chain((DIGITS, MLP, quick()), (DIGITS, MLP, quick(Rdl, rdl_layers={"core": "core"}))),
        1, ["RDL needs a teacher: set teacher='previous'"],
    ),
    "matching without a teacher": (
        lambda: chain((DIGITS, MLP, quick()), (DIGITS, MLP, quick(Matching, match_layers={"output": "output"}))),
        1, ["LayerMatching needs a teacher"],
    ),
    "ewc without a Fisher handed on": (
        lambda: chain((DIGITS, MLP, quick()), (DIGITS, MLP, quick(Regularised, param_reg="ewc"))),
        1, ["ParameterDistance with param_reg='ewc' needs the Fisher information of the previous step: set compute_fisher=True"],
    ),
    "orbit transfer without an orbit step before it": (
        lambda: teacher_then(DIGITS, MLP, quick(UseOrbit)),
        1, ["OrbitTransfer needs the teacher (the previous step's model) to be a LearnedOrbit (model config OrbitConfig), "
            "got CoreReadoutModel; put an orbit-learning step (OrbitLearning) right before this one"],
    ),
    "kd whose teacher is an orbit": (
        lambda: chain((DIGITS, MLP, quick()), (DIGITS, ORBIT, quick(LearnOrbit)), (DIGITS, MLP, student(Distillation))),
        2, ["KnowledgeDistillation: the teacher is the learned orbit of an orbit-learning step"],
    ),
    "orbit layer that the orbit lacks": (
        lambda: chain((DIGITS, MLP, quick()), (DIGITS, ORBIT, quick(LearnOrbit)),
                      (DIGITS, MLP, quick(UseOrbit, orbit_student_layers={"core.fc1": "hidden"}))),
        2, ["orbit_student_layers names orbit layers ['hidden'] the orbit lacks; it has ['input', 'output']"],
    ),
    "orbit layer of another length than the student's layer": (
        lambda: chain((DIGITS, MLP, quick()), (DIGITS, OrbitConfig(group_size=4, layers={"output": None, "hidden": 7}),
                                               quick(LearnOrbit)),
                      (DIGITS, MLP, quick(UseOrbit, orbit_student_layers={"core.fc1": "hidden"}))),
        2, ["OrbitTransfer (orbit_student_layers): the student's layer 'core.fc1' for orbit layer 'hidden': orbit layer "
            "'hidden' acts on an axis of length 7; got a representation of shape (8, 16)"],
    ),
    "orbit learning: unknown teacher layer": (
        lambda: chain((DIGITS, MLP, quick()), (DIGITS, OrbitConfig(group_size=4, layers={"output": None, "hidden": 16}),
                                               quick(LearnOrbit, orbit_layers_teacher={"core.relu": "hidden"}))),
        1, ["OrbitLearning (orbit_layers_teacher): the teacher's CoreReadoutModel has no layer 'core.relu'; "
            "did you mean 'core.relu1'?"],
    ),
}


@pytest.mark.parametrize("case", list(FAULTS))
def test_a_chain_that_cannot_work_is_refused_before_anything_is_written(tmp_path, case):
    build, step, expected = FAULTS[case]
    workdir = tmp_path / "work"
    with pytest.raises(ChainCheckError) as info:
        nntransfer.run(build(), workdir=str(workdir), progress=False)
    problems = info.value.problems
    mine = [line for line in problems if f"step {step}: " in line and all(part in line for part in expected)]
    assert mine, problems
    assert all(line.startswith("experiment 's") and "(seed 1) step " in line and "\n" not in line for line in problems)
    for sub in ("steps", "failed", "checkpoints"):  # nothing trained, no failure recorded
        assert not (workdir / sub).exists() or not any((workdir / sub).iterdir()), sub


def test_chains_that_work_pass_the_preflight():
    """The checks refuse only what cannot work: distillation across architectures, attention from a flat
    student layer, matching logits, EWC after a step that hands on its Fisher, a reset readout for new classes,
    and orbit transfer after an orbit step all pass."""
    recipe = as_recipe([
        teacher_then(DIGITS_12, MLP, student(Distillation), LENET),
        teacher_then(DIGITS_12, ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[72]),
                     student(Attention, at_layers={"core.fc1": "core.pool1"}), LENET),
        teacher_then(DIGITS, MLP, student(Matching, match_layers={"output": "output"})),
        teacher_then(DIGITS, MLP, student(Rdl, rdl_layers={"core": "core"})),
        chain((DIGITS, MLP, quick(compute_fisher=True)), (DIGITS, MLP, quick(Regularised, param_reg="ewc"))),
        chain((DIGITS_0TO4, MLP, quick()), (DIGITS, MLP, quick(reset=["readout"]))),
        chain((DIGITS, MLP, quick()), (DIGITS, OrbitConfig(group_size=4, layers={"output": None, "hidden": 16}), quick(LearnOrbit)),
              (DIGITS, MLP, quick(UseOrbit, orbit_student_layers={"output": "output", "core.fc1": "hidden"}))),
    ])
    preflight(recipe)


def test_every_problem_of_a_recipe_is_one_line_of_the_command(tmp_path, capsys):
    folder = tmp_path / f"faults_{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    (folder / "__init__.py").write_text("")
    (folder / "chains.py").write_text(textwrap.dedent("""
        from nntransfer.configs import *

        class Rdl(RDLMixin, ClassificationTrainerConfig):
            pass

        class Attention(AttentionTransferMixin, ClassificationTrainerConfig):
            pass

        data = ImageDatasetConfig(dataset_cls="Digits", train_subset=0.25, batch_size=64)
        model = ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[16])
        plain = ClassificationTrainerConfig(max_iter=1)
        transfer_experiments = {
            Description("rdl typo", 1): TransferExperiment([
                Experiment(data, model, plain, seed=1),
                Experiment(data, model, Rdl(max_iter=1, teacher="previous", start_from_previous=False,
                                            rdl_layers={"core.fc2": "core"}), seed=1)]),
            Description("no teacher", 2): TransferExperiment([
                Experiment(data, model, plain, seed=2),
                Experiment(data, model, Attention(max_iter=1, at_layers={"core": "core"}), seed=2)]),
        }
    """))
    workdir = tmp_path / "work"
    assert main(["run", str(folder), "--workdir", str(workdir), "--quiet"]) == EXIT_BAD_INPUT
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        "nntransfer: error: experiment 'rdl typo' (seed 1) step 1: RDL (rdl_layers): the student's CoreReadoutModel has "
        "no layer 'core.fc2'; did you mean 'core.fc1'? (top-level layers: core, readout)",
        "nntransfer: error: experiment 'no teacher' (seed 2) step 1: AttentionTransfer needs a teacher: set "
        "teacher='previous' in this step's trainer config, in a chain whose previous step trains the teacher",
    ]
    assert not (workdir / "steps").exists() or not any((workdir / "steps").iterdir())
