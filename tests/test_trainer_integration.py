"""The trainer with the package's own dataset loader (real digits) and model builder: a two-step transfer
chain that hands the first step's logits to the second for distillation."""

import numpy as np

from nntransfer.configs.dataset.image import ImageDatasetConfig
from nntransfer.configs.model.classification import ClassificationModelConfig
from nntransfer.configs.trainer.classification import ClassificationTrainerConfig
from nntransfer.configs.trainer.mixins import KnowledgeDistillationMixin, RepresentationMatchingMixin
from nntransfer.dataset import img_dataset_loader
from nntransfer.defaults import TASK_KEY
from nntransfer.models import classification_model_builder
from nntransfer.trainer import classification_trainer

TASK = TASK_KEY


class DistillMatchConfig(KnowledgeDistillationMixin, RepresentationMatchingMixin, ClassificationTrainerConfig):
    pass


def test_lenet5_on_digits_then_a_distilled_transfer_step():
    dataset = ImageDatasetConfig(dataset_cls="Digits", input_size=16, batch_size=64, valid_size=0.2, train_subset=0.5)
    loaders = img_dataset_loader(1, **dataset.to_dict())
    model = classification_model_builder(loaders, 1, **ClassificationModelConfig(type="lenet5").to_dict())
    trainer = ClassificationTrainerConfig(max_iter=2, lr=0.003, show_progress=False, compute_transfer_data=True)
    score, output, state = classification_trainer(model, loaders, 1, **trainer.to_dict(), **trainer.runtime_options())
    assert score > 20  # chance: 10 %
    n_train = len(loaders["train"][TASK].dataset)
    assert output["transfer_data"]["logits"].shape == (n_train, 10)

    # step 2: the logits reach the train loader as batch extras; distil them while matching representations
    loaders2 = img_dataset_loader(1, transfer_data=output["transfer_data"], **dataset.to_dict())
    model_config = ClassificationModelConfig(type="lenet5", get_intermediate_rep={"core": "core"})
    model2 = classification_model_builder(loaders2, 1, state_dict=state, **model_config.to_dict())
    step2 = DistillMatchConfig(max_iter=1, show_progress=False, data_transfer=True, kd_teacher="transfer_data",
                               rep_matching_layers=["core"], rep_matching_noise_std={0.2: 1.0}, reset=["readout"])
    score2, output2, _ = classification_trainer(model2, loaders2, 1, **step2.to_dict(), **step2.runtime_options())
    log = output2["tracker"]["log"]["Training"][TASK]
    assert log["distillation"][1] > 0 and log["rep_matching"][1] > 0
    assert np.isfinite(score2)


def test_transfer_data_are_logits_of_the_unaugmented_training_examples():
    import torch

    dataset = ImageDatasetConfig(dataset_cls="Digits", input_size=16, train_subset=0.2, augment_rotation=True, rotation_degrees=60.0)
    loaders = img_dataset_loader(2, **dataset.to_dict())
    model = classification_model_builder(loaders, 2, **ClassificationModelConfig(type="lenet5").to_dict())
    trainer = ClassificationTrainerConfig(max_iter=1, show_progress=False, compute_transfer_data=True)
    _, output, state = classification_trainer(model, loaders, 2, **trainer.to_dict(), **trainer.runtime_options())
    plain = loaders["train"][TASK].unaugmented_dataset
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        expected = model(torch.stack([plain[i][0] for i in range(len(plain))])).numpy()
    np.testing.assert_allclose(output["transfer_data"]["logits"], expected, rtol=1e-4, atol=1e-4)
