"""The four MNIST-1D modules of sinzlab/orbit_transfer_recipes (``_2021_09_24_aistats``) on
``nntransfer.compat.orbit_transfer``'s step loop, with only their import line changed: they pass the dry run and the
fast dev run, a shrunk chain of each trains on both stores, and the loop and its methods compute what
orbit_transfer/trainer/simple_trainer.py and forward_methods.py computed (the values are written out here
independently, in NumPy or by hand)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from test_compat_orbit_transfer import module_text, recipe_namespace

from nntransfer.cli.main import main
from nntransfer.compat.orbit_transfer import simple_trainer as st
from nntransfer.compat.orbit_transfer._translate import Refused
from nntransfer.compat.orbit_transfer.models import StaticLearnedEquivariance, learned_orbit_builder
from nntransfer.pipeline.step import resolve_function
from nntransfer.recipes.loading import load_recipe
from nntransfer.trainer.finite import TrainingDiverged

#: the module, how many steps its recipe trains, and whether its checks are slow (thousands of chains)
MODULES = {"mnist_1d_shift": (117, False), "mnist_1d_with_pooling_shift": (117, False),
           "mnist_1d_hypersearch": (4600, True), "mnist_1d_with_pooling_hypersearch": (4524, True)}


def marked(names, fast=None):
    """The module names, slow where ``MODULES`` says so (or, given ``fast``, all but those)."""
    slow = (lambda n: n not in fast) if fast is not None else (lambda n: MODULES[n][1])
    return [pytest.param(n, marks=pytest.mark.slow) if slow(n) else n for n in names]


def write_module(tmp_path, name: str, text: str = "") -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(text or module_text(name))
    return str(path)


def shrunk(name: str, steps: int = 60) -> str:
    """The module with fewer steps and evaluations (``total_steps``, ``eval_every``) and, for the shift modules,
    one shift (30): its chains as written, shorter."""
    text = module_text(name)
    text = re.sub(r"self\.total_steps = \d+", f"self.total_steps = {steps}", text)
    text = re.sub(r"self\.eval_every = \d+", "self.eval_every = 20", text)
    return re.sub(r"for shift in\s+np\.linspace\(0, 40, 9\):", "for shift in [30.0]:", text)


# ---------------------------------------------------------------------- the modules as written


@pytest.mark.parametrize("name", marked(MODULES))
def test_each_mnist_1d_module_passes_the_dry_run(name, tmp_path, capsys):
    work = tmp_path / "work"
    assert main(["run", write_module(tmp_path, name), "--dry-run", "--workdir", str(work), "--quiet"]) == 0
    assert f"nothing trained or written (local:{work}, not created yet): {MODULES[name][0]} train" in capsys.readouterr().out
    assert not work.exists()


def first_chain_of_each_method(path: str):
    """The name of the first chain of every method (the part of a chain's name before ':') of a module."""
    names = {}
    for description in load_recipe(path).transfer_experiments:
        names.setdefault(description.name.split(":")[0], description.name)
    return list(names.values())


@pytest.mark.parametrize("name", marked(MODULES))
def test_each_mnist_1d_module_passes_the_fast_dev_run(name, tmp_path, capsys):
    path = write_module(tmp_path, name)
    chains = first_chain_of_each_method(path)
    methods = {chain.split(":")[0] for chain in chains}
    assert {"kd", "kd_match", "rdl", "attention", "Equiv transfer"} <= methods, methods  # every method of the paper
    selected = [arg for chain in chains for arg in ("--chain", chain)]
    work = tmp_path / "work"
    assert main(["run", path, "--fast-dev-run", *selected, "--workdir", str(work), "--device", "cpu", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"(\d+) checked, 0 broke", out) and not work.exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", marked(MODULES, fast=["mnist_1d_shift"]))
def test_a_shrunk_equivariance_chain_of_each_module_trains_on_both_stores(name, tmp_path, db_prefix):
    import nntransfer

    path = write_module(tmp_path, name, shrunk(name))
    chain = next(n for n in load_recipe(path).transfer_experiments if n.name.startswith("Equiv transfer"))
    scores = {}
    # a schema of its own: modules share their teacher step, which another module's recipe file trained
    schema = f"{db_prefix}_mnist1d_{list(MODULES).index(name)}"
    for store in (f"local:{tmp_path / 'work'}", f"datajoint:{schema}"):
        rows = nntransfer.run(path, store=store, chains=[chain.name], progress=False)
        assert [row.state for row in rows] == ["done"] * 3, rows
        scores[store.split(":")[0]] = [row.score for row in rows]
    # the tables store the score as a FLOAT column (six significant digits); same seed, same numbers
    assert scores["datajoint"] == pytest.approx(scores["local"], rel=1e-5)
    teacher, orbit, student = scores["local"]
    assert teacher > 50 and student > 10 and orbit > 0  # accuracies of 10 classes (shrunk: above chance), the orbit's loss


# ---------------------------------------------------------------------- what the configs mean


def test_the_trainer_config_keeps_the_original_fields_and_drops_lr_loudly(caplog):
    ns = recipe_namespace("mnist_1d_shift", "for shift in")
    student = ns["StudentModel"]().to_dict()
    with caplog.at_level("WARNING"):
        trainer = ns["BaselineTrainer"](student_model=student, forward="kd", lr=0.123, softmax_temp=2, gamma=0.3)
    assert "lr=0.123 is read by nothing in orbit_transfer's simple trainer" in caplog.text
    values = trainer.to_dict()
    assert values["fn"] == "nntransfer.compat.orbit_transfer.simple_trainer.simple_trainer" and "lr" not in values
    # orbit_transfer/configs/trainer/simple_trainer.py defaults, and the recipe's own
    assert {k: values[k] for k in ("total_steps", "eval_every", "learning_rate", "patience", "lr_decay_steps", "batch_size",
                                   "lr_decay", "restore_best", "weight_decay", "softmax_temp", "gamma")} == {
        "total_steps": 40000, "eval_every": 100, "learning_rate": 0.01, "patience": 20, "lr_decay_steps": 5,
        "batch_size": 1000, "lr_decay": 0.8, "restore_best": True, "weight_decay": 0.0, "softmax_temp": 2.0, "gamma": 0.3}
    assert values["student_model"]["type"] == "orbit_transfer-simple_fc"
    orbit = ns["EquivTransferModel"]().to_dict()
    assert (orbit["fn"].endswith("learned_orbit_builder"), orbit["options"]) == (
        True, {"kernel_size": 40, "group_size": 40, "layers": 3})


def test_settings_the_step_loop_cannot_train_as_the_original_did_are_one_line(tmp_path):
    ns = recipe_namespace("mnist_1d_shift", "for shift in")
    with pytest.raises(Refused, match="rep_layer='conv2' is read by nothing in orbit_transfer's simple trainer"):
        ns["BaselineTrainer"](rep_layer="conv2")
    base = ns["BaselineTrainer"]().to_dict()
    for change, message in (({"forward": "kdd"}, "forward='kdd' is no method of orbit_transfer's simple trainer; did you "
                                                 "mean 'kd'?"),
                            ({"forward": "kd"}, "forward='kd' needs a teacher: set student_model"),
                            ({"eval_every": 50000}, "no evaluation after step 0 keeps a best model")):
        with pytest.raises(ValueError) as caught:
            st.check_simple_trainer_config({**base, **change})
        assert message in str(caught.value) and "\n" not in str(caught.value)


# ---------------------------------------------------------------------- the loop


@pytest.fixture(scope="module")
def mnist_1d():
    """The shift module's data (train_shift=30) and its teacher and student, untrained."""
    ns = recipe_namespace("mnist_1d_shift", "for shift in")
    data = ns["BaselineDataset"]().to_dict()
    loaders = resolve_function(data.pop("fn"))(seed=42, **data)

    def model(name):
        config = ns[name]().to_dict()
        return resolve_function(config.pop("fn"))(loaders, seed=42, **config)

    return ns, loaders, model


def step_loop(mnist_1d, model="TeacherModel", teacher=None, **settings):
    ns, loaders, build = mnist_1d
    config = {**ns["BaselineTrainer"]().to_dict(), "device": "cpu", **settings}
    return st.StepLoop(build(model), loaders, 42, teacher, config)


def test_batches_are_cut_in_order_from_the_unshuffled_training_split(mnist_1d):
    loop = step_loop(mnist_1d, total_steps=5, eval_every=5)
    seen, terms = [], loop.terms

    def recording(student, teacher, x, y, settings, generator):
        if torch.is_grad_enabled():  # a training step (the evaluations run under no_grad)
            seen.append(x.clone())
        return terms(student, teacher, x, y, settings, generator)

    loop.terms = recording
    loop.train()
    x_train, _ = st.split_arrays(mnist_1d[1]["train"])
    assert len(x_train) == 3600  # MNIST-1D's 4000 training signals less the original's valid_size=0.1
    starts = [0, 1000, 2000, 3000, 400, 1400]  # (step * 1000) % 3600, the batch at 3000 cut short to 600
    assert [len(x) for x in seen[:6]] == [1000, 1000, 1000, 600, 1000, 1000]
    for x, start in zip(seen, starts):
        assert torch.equal(x, x_train[start:start + 1000])


def test_patience_and_decay_counters_are_the_originals(mnist_1d):
    # learning_rate 0: the validation accuracy a > 0 never changes. Step 0 cannot improve (counter 1), step 1 does
    # (best, counter 0); then every 2 evaluations one decay, and with lr_decay_steps=1 the second time it stops:
    # steps 1 + (1 + 1) * 2 = 5
    loop = step_loop(mnist_1d, learning_rate=0.0, total_steps=50, eval_every=1, patience=2, lr_decay_steps=1)
    score, output, _ = loop.train()
    assert (output["steps"], output["best_step"]) == (5, 1)
    assert output["tracker"]["log"]["step"] == [0, 0, 1, 2, 3, 4, 5]
    validation = output["tracker"]["log"]["Validation"]["img_classification"]["accuracy"][1:]
    assert len(set(validation)) == 1 and score == validation[0] == output["final"]["validation"]["img_classification"]["accuracy"]
    assert set(output["final"]) == {"train", "validation", "test", "test_shift", "test_all"}


def test_reduce_on_plateau_is_in_mode_min_even_on_an_accuracy(mnist_1d):
    # the original's ReduceLROnPlateau(optimizer, factor=lr_decay, patience=patience) in its default mode 'min',
    # stepped with the validation accuracy: the learning rate decays at every evaluation whose accuracy is not below
    # the lowest so far (threshold 1e-4, relative), a rising accuracy included
    loop = step_loop(mnist_1d, total_steps=8, eval_every=1, patience=0, lr_decay_steps=100, lr_decay=0.5)
    _, output, _ = loop.train()
    log = output["tracker"]["log"]
    accuracies, rates = log["Validation"]["img_classification"]["accuracy"][1:], log["lr"][1:]
    expected, rate, lowest = [], 0.01, float("inf")
    for accuracy in accuracies:
        expected.append(rate)
        if accuracy < lowest * (1 - 1e-4):
            lowest = accuracy
        else:  # patience 0: every evaluation that is no improvement decays
            rate *= 0.5
    assert rates == pytest.approx(expected, rel=1e-12)
    assert max(accuracies) > accuracies[0] and rates[-1] < rates[0]  # it learned, and the rate fell all the same


def test_a_non_finite_loss_stops_the_step_naming_it(mnist_1d):
    loop = step_loop(mnist_1d, total_steps=3, eval_every=1)
    with torch.no_grad():
        next(loop.model.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="training diverged at step 0: the ce loss \\(main\\) is not finite"):
        loop.train()


def test_a_run_is_reproducible_and_learns(mnist_1d):
    first = step_loop(mnist_1d, total_steps=60, eval_every=20).train()
    second = step_loop(mnist_1d, total_steps=60, eval_every=20).train()
    assert first[0] == second[0] and first[0] > 30  # ten classes: chance is 10
    assert all(torch.equal(first[2][k], second[2][k]) for k in first[2])


# ---------------------------------------------------------------------- the methods


def _softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _kl(student, teacher, temperature):
    """Σ p_t (log p_t - log p_s) per example (torch's kl_div with log-probabilities of the student)."""
    p_t, p_s = _softmax(teacher / temperature), _softmax(student / temperature)
    return (p_t * (np.log(p_t) - np.log(p_s))).sum(1)


def _rdm(features):
    flat = features.reshape(len(features), -1)
    centred = flat - flat.mean(0, keepdims=True)
    norms = np.linalg.norm(centred, axis=1)
    return centred @ centred.T / np.outer(norms, norms)


def _cka(x, y):
    n = len(x)
    h = np.eye(n) - 1.0 / n
    kx, ky = h @ x @ x.T @ h, h @ y @ y.T @ h
    return (kx * ky).sum() / np.sqrt((kx * kx).sum() * (ky * ky).sum())


def _attention(features, positions):
    summed = (features ** 2).reshape(len(features), -1, positions).sum(1)
    return summed / np.linalg.norm(summed, axis=1, keepdims=True)


def test_the_representation_methods_compute_the_originals_terms():
    rng = np.random.default_rng(0)
    b = 6
    s_layers = {"linear_stack.0": rng.normal(size=(b, 600)), "linear_stack.2": rng.normal(size=(b, 400))}
    t_layers = {"conv_stack.0": rng.normal(size=(b, 15, 40)), "conv_stack.2": rng.normal(size=(b, 10, 40))}
    s_logits, t_logits = rng.normal(size=(b, 10)), rng.normal(size=(b, 10))
    y = rng.integers(0, 10, size=b)
    as_torch = lambda layers: {k: torch.tensor(v) for k, v in layers.items()}  # noqa: E731
    student, teacher = (as_torch(s_layers), torch.tensor(s_logits)), (as_torch(t_layers), torch.tensor(t_logits))
    labels = torch.tensor(y)
    ce = -np.log(_softmax(s_logits)[np.arange(b), y]).mean()
    pairs = [(s_layers["linear_stack.0"], t_layers["conv_stack.0"]), (s_layers["linear_stack.2"], t_layers["conv_stack.2"])]

    expected = {
        "kd": _kl(s_logits, t_logits, 2.0).mean() * 4.0,  # batchmean, times T²
        "kd_match": sum(((s - t.reshape(b, -1)) ** 2).mean() for s, t in pairs)
        + _kl(s_logits, t_logits, 10.0).sum() / (b * 10),  # reduction "mean": over every element, no T²
        "rdl": sum(((_rdm(s) - _rdm(t)) ** 2).mean() for s, t in pairs + [(s_logits, t_logits)]),
        "cka": -sum(_cka(s, t.reshape(b, -1)) for s, t in pairs + [(s_logits, t_logits)]),
        "attention": sum(((_attention(s, 40) - _attention(t, 40)) ** 2).mean() for s, t in pairs),
    }
    computed = {
        "kd": st.kd_terms(student, teacher, labels, 2.0),
        "kd_match": st.kd_match_terms(student, teacher, labels, 10.0),
        "rdl": st.rdl_terms(student, teacher, labels),
        "cka": st.cka_terms(student, teacher, labels),
        "attention": st.attention_terms(student, teacher, labels),
    }
    for method, (task_term, reg) in computed.items():
        assert float(task_term) == pytest.approx(ce, rel=1e-9), method
        assert float(reg) == pytest.approx(expected[method], rel=1e-7), method


def test_the_learned_orbit_acts_by_circular_convolution_with_its_kernels():
    orbit = learned_orbit_builder({}, seed=3, type="orbit_transfer-static_equivariance_transfer",
                                  options={"kernel_size": 5, "group_size": 40, "layers": 3})
    assert [tuple(p.shape) for p in orbit.parameters()] == [(40, 5), (5, 5), (5,), (5, 5), (5,), (10, 5), (10,)]
    x = torch.randn(3, 2, 40)
    g = torch.tensor([0, 7, 45])
    kernels = orbit.kernels.detach().numpy()[[0, 7, 5]]  # 45 is element 5 of a group of 40
    expected = np.stack([
        [[sum(kernels[i][k] * xs[(p + k - 2) % 40] for k in range(5)) for p in range(40)] for xs in x[i].numpy()]
        for i in range(3)])
    assert np.allclose(orbit(x, g).detach().numpy(), expected, atol=1e-5)
    with pytest.raises(TypeError, match="acts on \\(signals, group elements\\)"):
        orbit(x)


def identity_orbit(layers: int) -> StaticLearnedEquivariance:
    """An orbit whose every element and layer acts as the identity (centred unit kernels)."""
    orbit = StaticLearnedEquivariance(40, 40, layers)
    with torch.no_grad():
        orbit.kernels.zero_()
        orbit.kernels[:, 19] = 1.0  # circular padding 19 on the left: the kernel's index 19 reads position p
        for transform in orbit.layer_transforms[:-1]:
            transform.weight.copy_(torch.eye(40))
            transform.bias.zero_()
        orbit.layer_transforms[-1].weight.zero_()
        orbit.layer_transforms[-1].weight[4, 19] = 1.0  # a kernel of 10, padding 4 on the left
        orbit.layer_transforms[-1].bias.zero_()
    return orbit


def test_the_equivariance_methods_on_an_orbit_that_does_nothing(mnist_1d):
    _, loaders, build = mnist_1d
    teacher = build("TeacherModel")
    wrapped = st.IntermediateLayerWrapper(teacher, st.original_layers_of(teacher))
    orbit = identity_orbit(3)
    x, y = st.split_arrays(loaders["train"])
    x, y = x[:8], y[:8]
    generator = torch.Generator().manual_seed(0)
    settings = {"equiv_factor": 1.0, "invertible_factor": 1.0, "identity_factor": 0.5, "id_between_filters": True}
    # equivariant, invertible, and every element the same map: only the identity term, |cos| = 1, remains
    loss, reg = st.equiv_learn_terms(orbit, wrapped, x, settings, generator)
    assert float(loss.detach()) == pytest.approx(0.5, abs=1e-6) and float(reg) == 0
    # the kernels all alike: their mean |cosine| above the diagonal is 1
    loss, _ = st.equiv_learn_terms(orbit, wrapped, x, dict(settings, id_between_filters=False), generator)
    assert float(loss.detach()) == pytest.approx(0.5, abs=1e-6)
    # a student under the identity orbit: no equivariance error, and the CE on the "transformed" copy is the CE
    main, reg = st.equiv_transfer_terms(wrapped, orbit, x, y, generator)
    assert float(reg.detach()) == pytest.approx(float(main.detach()), abs=1e-6)


def test_the_methods_check_what_they_need_before_the_first_step(mnist_1d):
    _, _, build = mnist_1d
    teacher, student = build("TeacherModel"), build("StudentModel")
    with pytest.raises(ValueError, match="forward='equiv_transfer' trains a network .* with a learned orbit as the teacher"):
        st.check_models("equiv_transfer", student, teacher)
    with pytest.raises(ValueError, match="the learned orbit acts on 2 layers .* so 3 are needed"):
        st.check_models("equiv_learn", StaticLearnedEquivariance(40, 40, 2), teacher)
    with pytest.raises(ValueError, match="a learned orbit only takes part in 'equiv_learn' and 'equiv_transfer'"):
        st.check_models("kd", student, identity_orbit(3))
    st.check_models("equiv_learn", identity_orbit(3), teacher)  # the recipes' pairs pass
    st.check_models("kd", student, teacher)


def test_a_method_without_the_models_it_needs_is_refused_before_anything_trains(tmp_path, capsys):
    text = module_text("mnist_1d_shift").split("for shift in")[0] + '''
teacher_exp = Experiment(dataset=BaselineDataset(), model=TeacherModel(), trainer=BaselineTrainer(), seed=42)
transfer_experiments[Description(name="orbit transfer without an orbit", seed=42)] = TransferExperiment([
    teacher_exp,
    Experiment(dataset=BaselineDataset(), model=TeacherModel(),
               trainer=BaselineTrainer(student_model=StudentModel().to_dict(), forward="equiv_transfer"), seed=42),
])
'''
    work = tmp_path / "work"
    assert main(["run", write_module(tmp_path, "no_orbit", text), "--dry-run", "--workdir", str(work), "--quiet"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(lines) == 1 and "'orbit transfer without an orbit' (seed 42) step 1: forward='equiv_transfer' trains a " \
                               "network (student_model) with a learned orbit as the teacher" in lines[0], lines
    assert not work.exists()
