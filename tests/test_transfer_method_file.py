"""A transfer method is one file outside the package: the README's example (loss function, config mixin and
module) written to a folder of its own, imported from there, and trained in a teacher -> student step."""

import logging
import sys

import pytest
from test_readme import python_blocks_after
from test_trainer import TASK, TinyNet, config, train

from nntransfer.configs import ClassificationTrainerConfig, TransferMethodMixin
from nntransfer.trainer.main_loop_modules import MainLoopModule, available


@pytest.fixture
def method_file(tmp_path, monkeypatch):
    """The README's transfer method as ``cosine_logits_method.py`` in ``tmp_path``, imported from there."""
    method, _usage = python_blocks_after("## Writing a transfer method")
    (tmp_path / "cosine_logits_method.py").write_text(method)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "cosine_logits_method", raising=False)
    import cosine_logits_method

    return cosine_logits_method


def test_the_readme_method_file_registers_and_trains_its_term_from_outside_the_package(method_file, tmp_path, caplog):
    assert "CosineLogits" in available() and method_file.__file__ == str(tmp_path / "cosine_logits_method.py")

    class CosineTrainer(method_file.CosineLogitsMixin, ClassificationTrainerConfig):
        pass

    _, _, teacher_state = train(config(max_iter=1))
    teacher = TinyNet(seed=1)
    teacher.load_state_dict(teacher_state)
    cfg = CosineTrainer(max_iter=2, show_progress=False, early_stopping=False, cosine_weight=2.0)
    assert cfg.main_loop_modules == ["CosineLogits"]
    with caplog.at_level(logging.INFO, logger="nntransfer.trainer.trainer"):
        _, output, _ = train(cfg, teacher_model=teacher)
    log = output["tracker"]["log"]["Training"][TASK]
    terms = [value / n for value, n in zip(log["cosine_logits"][1:], log["normalization"][1:])]
    assert len(terms) == 2 and 0 < terms[1] < terms[0]  # tracked per epoch, and the student moves towards it
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch 2:")]
    assert lines and "training loss " in lines[0] and "cosine_logits " in lines[0] and "validation accuracy" in lines[0]


def test_the_readme_usage_block_builds_the_chain(method_file):
    from nntransfer.configs import ClassificationModelConfig, Experiment, ImageDatasetConfig, TransferExperiment

    digits = ImageDatasetConfig(dataset_cls="Digits", input_size=16)
    namespace = {**vars(method_file), "ClassificationTrainerConfig": ClassificationTrainerConfig, "Experiment": Experiment,
                 "TransferExperiment": TransferExperiment, "digits": digits,
                 "student_model": ClassificationModelConfig(type="lenet300-100"),
                 "teacher": Experiment(digits, ClassificationModelConfig(type="lenet5"), ClassificationTrainerConfig(), seed=1)}
    exec(python_blocks_after("## Writing a transfer method")[1], namespace)
    student = namespace["student"]
    assert student.trainer.cosine_weight == 2.0 and "CosineLogits" in student.trainer.main_loop_modules


def test_a_module_that_reads_a_field_its_mixin_lacks_is_refused_when_defined():
    class TinyMixin(TransferMethodMixin):
        def __init__(self, **kwargs):
            self.set_defaults(tiny_weight=1.0)
            super().__init__(**kwargs)

    with pytest.raises(ValueError, match=r"reads config field\(s\) \['tiny_wieght'\] that its config_mixin TinyMixin"):
        class Tiny(MainLoopModule):
            config_mixin = TinyMixin

            def post_forward(self, state):
                state.add_loss("tiny", state.output.logits.sum(), self.config.tiny_wieght)
