"""A teacher in the student's loop: what a step takes from the previous one (weights, a teacher of another
architecture, the original ``student_model`` form, the Fisher) and the refusal of misaligned handed-on data."""

import logging

import numpy as np
import pytest
import torch

import nntransfer
from nntransfer.configs import (
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Description,
    Experiment,
    ImageDatasetConfig,
    NoiseAugmentationMixin,
    TransferExperiment,
)
from nntransfer.pipeline.local import LocalStore
from nntransfer.pipeline.step import Predecessor, StepSpec, check_alignment, handed_on_record, run_step
from nntransfer.pipeline.store import DONE
from nntransfer.trainer.main_loop_modules import OUTPUTS, MainLoopModule, register

DATA = ImageDatasetConfig(dataset_cls="Digits", train_subset=0.25, batch_size=64)
TEACHER = ClassificationModelConfig(type="lenet300-100")
STUDENT = ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[24])


@register
class TeacherProbe(MainLoopModule):
    """Checks, on every training batch, that the teacher ran frozen and in eval mode on exactly the inputs
    the student saw (the student's flattened input is the output of its ``core.flatten``)."""

    needs_teacher = OUTPUTS
    batches = 0
    widths = set()  # of the teacher's first hidden layer

    @classmethod
    def student_layers(cls, config):
        return ["core.flatten"]

    @classmethod
    def teacher_layers(cls, config):
        return ["core.fc1"]

    def pre_forward(self, state):
        if state.training:
            self.before_noise = state.inputs.clone()

    def post_forward(self, state):
        if not state.training:
            return
        teacher = self.context.teacher
        assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
        logits = state.teacher_output.logits
        TeacherProbe.widths.add(state.teacher_output.layer("core.fc1").shape[1])
        seen = state.output.layer("core.flatten").detach().reshape(self.before_noise.shape)
        with torch.no_grad():
            assert torch.allclose(logits, teacher(seen)[1], atol=1e-5)
            if getattr(self.config, "noise_std", None):  # the noise came after this module's pre_forward
                assert not torch.allclose(logits, teacher(self.before_noise)[1], atol=1e-3)
        TeacherProbe.batches += 1


class ProbedNoisyTrainer(NoiseAugmentationMixin, ClassificationTrainerConfig):
    pass


def trainer(**kwargs):
    return ClassificationTrainerConfig(max_iter=2, show_progress=False, **kwargs)


def teacher_chain(seed=5, **student_trainer):
    student_trainer.setdefault("teacher", "previous")
    student_trainer.setdefault("start_from_previous", False)
    return TransferExperiment([
        Experiment(DATA, TEACHER, trainer(), seed=seed, comment="teacher"),
        Experiment(DATA, STUDENT, trainer(**student_trainer), seed=seed, comment="student"),
    ])  # fmt: skip


def test_the_teacher_runs_frozen_on_exactly_the_noisy_batch_the_student_sees(tmp_path):
    TeacherProbe.batches, TeacherProbe.widths = 0, set()
    chain = TransferExperiment([
        Experiment(DATA, TEACHER, trainer(), seed=5),
        Experiment(DATA, STUDENT, ProbedNoisyTrainer(max_iter=1, show_progress=False, teacher="previous",
                                                     start_from_previous=False, main_loop_modules=["TeacherProbe"],
                                                     noise_std={0.3: 1.0}), seed=5),
    ])  # fmt: skip
    rows = nntransfer.run(chain, workdir=tmp_path, progress=False)
    assert [row.state for row in rows] == [DONE, DONE]
    assert TeacherProbe.widths == {300}  # lenet300-100's first hidden layer
    assert TeacherProbe.batches == 6  # every training batch of the epoch (0.25 of the training set, batches of 64)


def test_a_module_that_needs_a_teacher_is_refused_without_one():
    chain = TransferExperiment([Experiment(DATA, STUDENT, trainer(main_loop_modules=["TeacherProbe"]), seed=5)])
    spec = StepSpec.from_experiment(chain[0])
    with pytest.raises(ValueError, match="TeacherProbe need.*teacher='previous'"):
        run_step(spec)


def test_first_step_cannot_have_a_teacher_or_a_student_model():
    with pytest.raises(ValueError, match="no previous step to be the teacher"):
        TransferExperiment([Experiment(DATA, STUDENT, trainer(teacher="previous"), seed=5)])
    with pytest.raises(ValueError, match="student_model"):
        TransferExperiment([Experiment(DATA, TEACHER, trainer(student_model=STUDENT), seed=5)])


def test_start_from_previous_is_explicit_and_hashed(tmp_path, caplog):
    fresh = teacher_chain(start_from_previous=False, teacher=None)
    warm = teacher_chain(start_from_previous=True, teacher=None)
    assert fresh.step_key(1)["trainer_hash"] != warm.step_key(1)["trainer_hash"]
    store = LocalStore(tmp_path)
    with caplog.at_level(logging.WARNING, logger="nntransfer.models.utils"):
        nntransfer.run(warm, workdir=tmp_path, progress=False)
    # the student is another architecture: a partial lenient load names, at WARNING, what it took and skipped
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("loaded ") and "core.fc1" not in m for m in messages)  # fc1 differs in shape
    assert any("skipped" in m and "core.fc1.weight" in m for m in messages)
    nntransfer.run(fresh, workdir=tmp_path, progress=False)
    teacher_weights = store.load_weights(fresh.step_key(0))
    assert teacher_weights["core.fc1.weight"].shape[0] == 300
    # the same student, trained from its own initialisation, is the student of an experiment without a predecessor
    alone = TransferExperiment([Experiment(DATA, STUDENT, trainer(start_from_previous=False, teacher=None), seed=5)])
    nntransfer.run(alone, workdir=tmp_path, progress=False)
    assert store.load(alone.step_key(0)).score == store.load(fresh.step_key(1)).score


def test_original_form_student_model_trains_the_student_and_the_next_step_rebuilds_it(tmp_path):
    TeacherProbe.widths = set()
    chain = TransferExperiment([
        Experiment(DATA, TEACHER, trainer(), seed=6),
        Experiment(DATA, TEACHER, trainer(student_model=STUDENT), seed=6),  # the step's model is the teacher
        Experiment(DATA, STUDENT, trainer(teacher="previous", start_from_previous=False,
                                          main_loop_modules=["TeacherProbe"]), seed=6),
    ])  # fmt: skip
    rows = nntransfer.run(chain, workdir=tmp_path, progress=False)
    assert [row.state for row in rows] == [DONE] * 3
    weights = LocalStore(tmp_path).load_weights(chain.step_key(1))
    assert weights["core.fc1.weight"].shape == (24, 64)  # the student's, not the teacher's
    assert TeacherProbe.widths == {24}  # step 2's teacher is step 1's student, rebuilt from student_model


def test_the_teacher_must_fit_the_students_data(tmp_path):
    other = ImageDatasetConfig(dataset_cls="Digits", train_subset=0.25, batch_size=64, filter_classes=(0, 3))
    chain = TransferExperiment([
        Experiment(DATA, TEACHER, trainer(), seed=5),
        Experiment(other, STUDENT, trainer(teacher="previous", start_from_previous=False), seed=5),
    ])  # fmt: skip
    nntransfer.run(chain[0], workdir=tmp_path, progress=False)
    store = LocalStore(tmp_path)
    previous = Predecessor(StepSpec.from_experiment(chain[0]), store.load_weights(chain.step_key(0)))
    with pytest.raises(ValueError, match="teacher.*do not fit.*shape differs"):
        run_step(StepSpec.from_experiment(chain[1]), previous)


def distilling_chain(seed_student):
    return TransferExperiment([
        Experiment(DATA, TEACHER, trainer(compute_transfer_data=True), seed=7),
        Experiment(DATA, STUDENT, trainer(data_transfer=True, start_from_previous=False), seed=seed_student),
    ])  # fmt: skip


def test_handed_on_data_for_other_examples_is_refused_before_anything_trains(tmp_path):
    with pytest.raises(ValueError, match="data_transfer refused: .* differ; give both steps the same dataset"):
        nntransfer.run(distilling_chain(seed_student=8), workdir=tmp_path, progress=False)
    assert not (tmp_path / "steps").exists() or not any((tmp_path / "steps").iterdir())


def test_handed_on_data_records_its_examples_and_is_checked_when_it_arrives(tmp_path):
    good = distilling_chain(seed_student=7)
    rows = nntransfer.run(good, workdir=tmp_path, progress=False)
    assert [row.state for row in rows] == [DONE, DONE]
    store = LocalStore(tmp_path)
    handed_on = store.load_transfer_data(good.step_key(0))
    assert handed_on["logits"].shape[0] == len(handed_on["record/example_ids"])
    assert int(handed_on["record/seed"]) == 7
    # the run-time check (data sets that another run may have produced differently)
    previous = Predecessor(StepSpec.from_experiment(good[0]), store.load_weights(good.step_key(0)), handed_on)
    with pytest.raises(ValueError, match="data_transfer refused"):
        run_step(StepSpec.from_experiment(distilling_chain(seed_student=8)[1]), previous, data_transfer=True)


def test_alignment_without_example_ids_warns_when_data_config_or_seed_differ(caplog):
    spec = StepSpec.from_experiment(distilling_chain(7)[1])
    record = {k.split("/", 1)[1]: v for k, v in handed_on_record(spec, None).items()}
    with caplog.at_level(logging.WARNING, logger="nntransfer.pipeline.step"):
        check_alignment(record, spec, None)  # same config and seed: nothing to say
        assert not caplog.records
        record["seed"] = np.array(8)
        check_alignment(record, spec, None)
    assert "does not report its example ids" in caplog.records[0].getMessage()


def test_fisher_is_handed_on_and_reaches_the_next_trainer(tmp_path):
    chain = TransferExperiment([
        Experiment(DATA, STUDENT, trainer(compute_fisher=True), seed=9),
        Experiment(DATA, STUDENT, trainer(), seed=9),
    ])  # fmt: skip
    nntransfer.run(chain[0], workdir=tmp_path, progress=False)
    store = LocalStore(tmp_path)
    handed_on = store.load_transfer_data(chain.step_key(0))
    weights = store.load_weights(chain.step_key(0))
    assert {f"fisher/{name}" for name in weights} == set(handed_on)  # every parameter, nothing per-example
    assert all(np.all(v >= 0) for v in handed_on.values()) and any(np.any(v > 0) for v in handed_on.values())
    seen = {}

    def trainer_fn(model, dataloaders, seed, uid=None, cb=None, fisher=None, **config):
        seen.update(fisher)
        return 1.0, {}, model.state_dict()

    spec = StepSpec.from_experiment(chain[1])
    spec.trainer_fn = trainer_fn
    run_step(spec, Predecessor(StepSpec.from_experiment(chain[0]), weights, handed_on))
    assert set(seen) == set(weights)


def test_chain_with_a_teacher_of_another_architecture_scores_the_same_on_both_backends(tables, tmp_path):
    recipe = {Description(name="teacher", seed=11): teacher_chain(seed=11, main_loop_modules=["TeacherProbe"])}
    scores = {}
    for backend in ("local", "datajoint"):
        store = f"local:{tmp_path}" if backend == "local" else f"datajoint:{tables.schema_name}"
        rows = nntransfer.run(recipe, store=store, progress=False)
        assert [row.state for row in rows] == [DONE, DONE], backend
        scores[backend] = [row.score for row in rows]
    assert scores["local"] == scores["datajoint"]
