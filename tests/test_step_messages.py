"""Runtime messages that say what is wrong, in one line: handed-on data of another step blamed on the store
(not the recipe), reordered example ids called reordered, logits of another class count and a loss that cannot
take the outputs named instead of torch's errors, a function named once."""

import numpy as np
import pytest
from test_trainer import TASK, config, digits_loaders, train

from nntransfer.configs import (
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Experiment,
    ImageDatasetConfig,
    KnowledgeDistillationMixin,
    TransferExperiment,
)
from nntransfer.pipeline.step import Predecessor, StepSpec, handed_on_record, resolve_function, run_step

DATA = ImageDatasetConfig(dataset_cls="Digits", train_subset=0.25, batch_size=64)
MODEL = ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[8])


class KDConfig(KnowledgeDistillationMixin, ClassificationTrainerConfig):
    pass


def distilling_chain(seed=7):
    return TransferExperiment([
        Experiment(DATA, MODEL, ClassificationTrainerConfig(max_iter=1, compute_transfer_data=True), seed=seed),
        Experiment(DATA, MODEL, ClassificationTrainerConfig(max_iter=1, data_transfer=True, start_from_previous=False),
                   seed=seed),
    ])  # fmt: skip


def handed_on(spec, ids, seed=None):
    """Logits for ``ids`` with the record ``spec`` writes (its seed replaced by ``seed``)."""
    data = {"logits": np.zeros((len(ids), 10), dtype=np.float32), **handed_on_record(spec, ids)}
    if seed is not None:
        data["record/seed"] = np.array(seed)
    return data


def train_ids(spec):
    return np.asarray(resolve_function(spec.dataset_fn)(seed=spec.seed, **spec.config("dataset")).train_ids)


def test_handed_on_data_of_another_seed_is_blamed_on_the_store_not_on_the_recipe():
    chain = distilling_chain()
    producer, student = StepSpec.from_experiment(chain[0]), StepSpec.from_experiment(chain[1])
    ids = train_ids(producer)
    copied = Predecessor(producer, {}, handed_on(producer, ids, seed=8))  # another seed's file over step 0's
    with pytest.raises(ValueError) as err:
        run_step(student, copied, data_transfer=True)
    message = str(err.value)
    assert "the store holds another step's data" in message and "nntransfer forget" in message, message
    assert "give both steps the same dataset config" not in message and "\n" not in message


def test_reordered_example_ids_are_refused_as_reordered():
    chain = distilling_chain()
    producer, student = StepSpec.from_experiment(chain[0]), StepSpec.from_experiment(chain[1])
    ids = train_ids(producer)
    reordered = Predecessor(producer, {}, handed_on(producer, ids[::-1].copy()))
    with pytest.raises(ValueError) as err:
        run_step(student, reordered, data_transfer=True)
    message = str(err.value)
    assert f"the same {len(ids)} training examples" in message and "in another order" in message, message
    assert "0 of them differ" not in message


def test_logits_of_another_class_count_handed_to_a_distilling_student_are_one_clear_line():
    loaders = digits_loaders(extras={"logits": np.zeros((256, 5), dtype=np.float32)})
    with pytest.raises(ValueError) as err:
        train(KDConfig(kd_teacher="transfer_data", data_transfer=True, max_iter=1, show_progress=False), loaders=loaders)
    message = str(err.value)
    assert "the logits the previous step handed on have 5 classes, the student 10" in message and "\n" not in message


@pytest.mark.filterwarnings("ignore:Using a target size")  # torch warns before it fails
def test_a_loss_that_cannot_take_the_outputs_is_one_clear_line_naming_it():
    with pytest.raises(ValueError) as err:
        train(config(max_iter=1, compute_fisher=True, loss_functions={TASK: "MSELoss"}))
    message = str(err.value)
    assert f"loss_functions[{TASK!r}] = 'MSELoss' cannot compare the model's outputs (64, 10) float32 with the " \
           "targets (64,) int64" in message and "CrossEntropyLoss" in message and "\n" not in message, message


def test_a_function_that_does_not_resolve_is_named_once():
    with pytest.raises(ValueError) as err:
        resolve_function("nosuch.module.fn")
    assert str(err.value).startswith("the function 'nosuch.module.fn' cannot be imported")
