"""What ``reset=["readout"]`` re-initialises on LeNet-5 is what the README and the model say: the three fully
connected layers fc1-fc3; ``reset=["readout.fc3"]`` (the README's fine-tuning example) only the last layer."""

from pathlib import Path

import torch

from nntransfer.configs import ClassificationModelConfig
from nntransfer.models.builder import build_model
from nntransfer.models.utils import reset_params

README = Path(__file__).resolve().parent.parent / "README.md"


def changed_by(selectors):
    model = build_model(ClassificationModelConfig(type="lenet5"), (1, 16, 16), 5, seed=0)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    torch.manual_seed(123)
    reset_params(model, selectors)
    return sorted({name.rsplit(".", 1)[0] for name, p in model.named_parameters() if not torch.equal(p, before[name])})


def test_lenet5_readout_is_its_three_fully_connected_layers():
    assert changed_by(["readout"]) == ["readout.fc1", "readout.fc2", "readout.fc3"]
    assert changed_by(["readout.fc3"]) == ["readout.fc3"]
    assert changed_by(["core"]) == ["core.layer1", "core.layer2"]


def test_the_readme_says_what_the_readout_is_and_its_example_renews_only_the_last_layer():
    text = " ".join(README.read_text().split())
    assert 'finetune = ClassificationTrainerConfig(max_iter=5, reset=["readout.fc3"]) # a new last layer' in text
    assert "for LeNet-5 its three fully connected layers `fc1`–`fc3`" in text
    assert 'reset=["readout"]` keeps only the two convolutional layers' in text
