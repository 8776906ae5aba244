"""Non-finite settings and non-finite training: a NaN or an infinity in a config is refused when the config is
made; a step whose loss terms, weights or Fisher information become NaN or infinite stops with one line naming
the epoch and what is not finite, and nothing of it is stored."""

import pytest
import torch
from test_trainer import TinyNet, config, digits_loaders, train

import nntransfer
from nntransfer.configs import (
    ClassificationModelConfig,
    ClassificationTrainerConfig,
    Experiment,
    ImageDatasetConfig,
    KnowledgeDistillationMixin,
    NoiseAugmentationMixin,
    ParameterDistanceMixin,
    TransferExperiment,
)
from nntransfer.pipeline.store import BLOCKED, FAILED
from nntransfer.trainer import ImgClassificationTrainer, trainer_config_from_dict
from nntransfer.trainer.finite import TrainingDiverged
from nntransfer.trainer.main_loop_modules import MainLoopModule, register

NAN, INF = float("nan"), float("inf")


class KDConfig(KnowledgeDistillationMixin, ClassificationTrainerConfig):
    pass


class NoisyConfig(NoiseAugmentationMixin, ClassificationTrainerConfig):
    pass


class EWCConfig(ParameterDistanceMixin, ClassificationTrainerConfig):
    pass


# ---------------------------------------------------------------------- settings


@pytest.mark.parametrize("make, field", [
    (lambda: KDConfig(kd_temperature=NAN), "kd_temperature"),
    (lambda: KDConfig(kd_temperature=INF), "kd_temperature"),
    (lambda: ClassificationTrainerConfig(scheduler="plateau", scheduler_options={"factor": NAN}), "scheduler_options"),
    (lambda: ClassificationTrainerConfig(tolerance=-INF), "tolerance"),
    (lambda: ImageDatasetConfig(rotation_degrees=NAN), "rotation_degrees"),
    (lambda: ImageDatasetConfig(test_transforms={"noisy": {"transform": "gaussian_noise", "std": NAN}}), "test_transforms"),
    (lambda: KDConfig.from_dict({**KDConfig().to_dict(), "kd_temperature": NAN}), "kd_temperature"),
], ids=["kd_nan", "kd_inf", "nested", "minus_inf", "dataset", "dataset_nested", "from_dict"])
def test_a_non_finite_setting_is_refused_when_the_config_is_made(make, field):
    with pytest.raises(ValueError, match=f"\\.{field} .*(finite|NaN)") as err:
        make()
    assert "\n" not in str(err.value)


def test_a_non_finite_setting_is_refused_by_update_and_assignment_and_the_config_keeps_its_value():
    kd = KDConfig()
    with pytest.raises(ValueError, match="kd_temperature must be a finite number, got nan"):
        kd.update(kd_temperature=NAN)
    with pytest.raises(ValueError, match="kd_temperature must be a finite number, got inf"):
        kd.kd_temperature = INF
    assert kd.kd_temperature == 4.0


def test_an_infinity_is_accepted_only_where_the_class_declares_it():
    assert NoisyConfig(noise_snr={INF: 0.5}).noise_snr == {INF: 0.5}  # INFINITE_FIELDS: an SNR of inf is clean
    with pytest.raises(ValueError, match="noise_std holds inf"):
        NoisyConfig(noise_std={INF: 0.5})


# ---------------------------------------------------------------------- training


@register
class NonFiniteTerm(MainLoopModule):
    """Adds a logged term ``probe`` to the training loss that becomes ``value`` from epoch ``epoch`` on."""

    epoch, value = 2, NAN

    def post_forward(self, state):
        if state.training:
            state.add_loss("probe", state.output.logits.sum() * 0 + (self.value if self.context.epoch >= self.epoch else 0.0))


@register
class NonFiniteWeight(MainLoopModule):
    """Sets one weight of the model to NaN after the training part of epoch 2 (the loss stays finite)."""

    def post_epoch(self, mode):
        if mode == "Training" and self.context.epoch == 2:
            with torch.no_grad():
                self.context.model.readout[1].weight[0, 0] = NAN


@pytest.mark.parametrize("value", [NAN, INF])
def test_a_loss_term_that_becomes_non_finite_stops_the_step_naming_the_epoch_and_the_term(value):
    NonFiniteTerm.value = value
    with pytest.raises(TrainingDiverged) as err:
        train(config(max_iter=4, main_loop_modules=["NonFiniteTerm"]))
    message = str(err.value)
    assert "epoch 2" in message and "'probe'" in message and "\n" not in message, message


def test_weights_that_become_non_finite_stop_the_step_though_the_accuracy_stays_finite():
    with pytest.raises(TrainingDiverged, match="epoch 2: the weights 'readout.1.weight' are not finite"):
        train(config(max_iter=4, main_loop_modules=["NonFiniteWeight"]))


def test_a_fisher_information_that_is_not_finite_is_refused_where_it_is_made_and_where_it_arrives():
    trainer = ImgClassificationTrainer(TinyNet(), digits_loaders(), 1, config(max_iter=1, compute_fisher=True))
    trainer.train()
    with torch.no_grad():  # finite weights whose gradients overflow when squared
        trainer.model.readout[1].weight.mul_(1e30)
    with pytest.raises(TrainingDiverged, match="this step's Fisher information of '.*' is not finite"):
        trainer.compute_fisher()

    model = TinyNet()
    fisher = {name: torch.ones_like(p) for name, p in model.named_parameters()}
    fisher["core.0.weight"][0, 0, 0, 0] = NAN
    ewc = trainer_config_from_dict(EWCConfig(param_reg="ewc", max_iter=1, show_progress=False).to_dict())
    with pytest.raises(TrainingDiverged, match="the previous step's Fisher information of 'core.0.weight' is not finite"):
        ImgClassificationTrainer(model, digits_loaders(), 1, ewc, fisher=fisher)


def test_a_diverging_step_is_recorded_as_failed_stores_nothing_and_its_chain_stops(tmp_path):
    data = ImageDatasetConfig(dataset_cls="Digits", train_subset=0.25, batch_size=64)
    model = ClassificationModelConfig(type="mlp", mlp_hidden_sizes=[16])
    diverging = ClassificationTrainerConfig(max_iter=3, lr=1e30, optimizer="SGD", show_progress=False)
    chain = TransferExperiment([Experiment(data, model, diverging, seed=3, comment="diverges"),
                                Experiment(data, model, ClassificationTrainerConfig(max_iter=1, show_progress=False),
                                           seed=3, comment="after")])
    rows = nntransfer.run(chain, workdir=tmp_path, progress=False)
    assert [row.state for row in rows] == [FAILED, BLOCKED]
    assert "training diverged in epoch 1" in rows[0].error and "not finite" in rows[0].error
    steps = tmp_path / "steps"
    assert not steps.exists() or not any(steps.iterdir())

