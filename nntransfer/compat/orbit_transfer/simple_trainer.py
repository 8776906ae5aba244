"""orbit_transfer's MNIST-1D step loop (orbit_transfer/trainer/simple_trainer.py and forward_methods.py of
sinzlab/orbit_transfer), the trainer function of the compat ``SimpleTrainerConfig``.

One run (``simple_trainer``)::

    seed Python, NumPy and torch; Adam(learning_rate, weight_decay); ReduceLROnPlateau(factor=lr_decay,
        patience=patience) in mode "min" (the original's, also when it is stepped with an accuracy)
    x, y = the training split as arrays, in the loader's own order (never shuffled)
    for step in 0 .. total_steps:
        batch = x[(step * batch_size) % N :][:batch_size]     # cut short at the end; the next starts at the rest
        [augment: the batch rolled by one shift drawn from 0 .. augment]
        main, reg = <forward>(student, batch, teacher)         # the method's two terms (below)
        Adam step on (1 - gamma) * main + gamma * reg          # a non-finite loss stops the step (TrainingDiverged)
        if step % eval_every == 0:
            objective = the validation accuracy (select_on_loss: its loss, minimised)
            step > 0 and better than the best: keep the weights, patience counter = 0; else counter += 1
            counter >= patience: stop if lr_decay_steps decays happened already, else decays += 1, counter = 0
            scheduler.step(objective)
    restore_best: load the kept weights; evaluate every split -> (score, output, weights)

The methods (``forward=``; the layers are the original's ``IntermediateLayerGetter`` layers, each module's output
before its ReLU, a student layer ``linear...`` paired with the teacher layer ``conv...`` of the same name):

=================  ===========================================================================================
``default``/``ce``  main = CE; reg = 0
``kd``              reg = T² · KL(softmax(teacher / T) ‖ softmax(student / T)), averaged over the batch
``kd_match``        reg = Σ_layers MSE(student layer, teacher layer) + KL(...) averaged over every element, no T²
``rdl``             reg = Σ over the layers and the logits of MSE(R_student, R_teacher), R the cosine similarity
                    matrix of the batch after subtracting the batch mean of every feature
``cka``             reg = - Σ over the layers and the logits of linear CKA(student, teacher)
``attention``       reg = Σ_layers MSE of the L2-normalised attention maps (squares summed over the channels)
``equiv_transfer``  the teacher is the learned orbit: main = CE on the batch; reg = MSE between the student's
                    layers and logits on orbit(x, g) and the orbit acting on them at (g, layer), + CE on orbit(x, g)
``equiv_learn``     the student is the learned orbit, the teacher the network: main = equiv_factor · that MSE
                    (on the teacher) + invertible_factor · MSE(x, orbit(orbit(x, g), -g)) + identity_factor ·
                    (|cos| between the orbits of g and of another element h, or with id_between_filters=False the
                    mean |cos| between the kernels); reg = 0
=================  ===========================================================================================

Group elements are drawn from 0 .. 39 (the original's constant, MNIST-1D's length) by a generator of this step's
seed; the evaluations draw from their own generator, so that evaluating does not change what trains.

What differs from the original, none of it what trains: the evaluations read the validation split only (the
original also evaluated the training and test splits of three data variants at every evaluation, which decides
nothing); reported losses are means over all examples, while the objective that selects and steps the scheduler
is computed as the original did (the sum of the means of whole chunks of 500 examples, accuracy over whole chunks
of 1000, on a split larger than a chunk); the score is this library's (the validation objective, not the
original's accuracy on "test_all"; every split is in ``output["final"]``); no checkpoints (an interrupted step
trains again from step 0, as the original would) and no TensorBoard or MLflow log.
"""

from __future__ import annotations

import copy
import logging
import random
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from nntransfer.compat.orbit_transfer.configs.trainer import FORWARD_METHODS, STEP_LOOP_FIELDS
from nntransfer.compat.orbit_transfer.models import StaticLearnedEquivariance, original_layers_of
from nntransfer.models.intermediate import IntermediateLayerWrapper
from nntransfer.registry import did_you_mean
from nntransfer.trainer.finite import ADVICE, TrainingDiverged
from nntransfer.trainer.main_loop_modules.cka import linear_cka
from nntransfer.trainer.trainer import freeze_teacher, resolve_device, set_random_seed

logger = logging.getLogger(__name__)

#: the group the original's equivariance methods draw elements from (MNIST-1D's length, a constant there)
GROUP_ELEMENTS = 40
#: the chunks of the original's evaluation: losses per 500 examples, accuracies per 1000
LOSS_CHUNK, ACCURACY_CHUNK = 500, 1000

Terms = Tuple[torch.Tensor, torch.Tensor]
Outputs = Tuple[Dict[str, torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------------- the methods (pure functions)


def paired_layers(student: Mapping[str, torch.Tensor], teacher: Mapping[str, torch.Tensor]) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Each student layer with the teacher layer of the same name, ``linear`` read as ``conv`` (the original's
    ``layer.replace("linear", "conv")``)."""
    pairs = []
    for name, features in student.items():
        partner = name.replace("linear", "conv")
        if partner not in teacher:
            raise ValueError(f"the student's layer {name!r} has no teacher layer {partner!r} (the teacher's layers: "
                             f"{', '.join(teacher)})")
        pairs.append((features, teacher[partner]))
    return pairs


def distillation_divergence(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float,
                            per: str) -> torch.Tensor:
    """KL(softmax(teacher / T) ‖ softmax(student / T)) summed and divided by the batch size (``per="example"``,
    torch's "batchmean") or by the number of logits (``per="logit"``, what torch's "mean" did when the original ran;
    written out, as torch announces that "mean" will change)."""
    summed = F.kl_div(F.log_softmax(student_logits / temperature, dim=1), F.softmax(teacher_logits / temperature, dim=1),
                      reduction="sum")
    return summed / (student_logits.shape[0] if per == "example" else student_logits.numel())


def centred_cosine_matrix(features: torch.Tensor) -> torch.Tensor:
    """The original's ``compute_rdm``: features flattened, each feature centred over the batch, then the cosine
    similarity between every two examples."""
    flat = features.flatten(1)
    centred = flat - flat.mean(dim=0, keepdim=True)
    norms = torch.linalg.vector_norm(centred, dim=1)
    return (centred @ centred.T) / torch.outer(norms, norms)


def attention_map(features: torch.Tensor, positions: int) -> torch.Tensor:
    """Squares summed over the channels (``features`` read as ``[B, -1, positions]``), L2-normalised per example."""
    summed = features.abs().pow(2).reshape(features.shape[0], -1, positions).sum(dim=1)
    return summed / torch.linalg.vector_norm(summed, dim=1, keepdim=True)


def ce_terms(student: Outputs, y: torch.Tensor) -> Terms:
    return F.cross_entropy(student[1], y), torch.zeros((), device=y.device)


def kd_terms(student: Outputs, teacher: Outputs, y: torch.Tensor, temperature: float) -> Terms:
    reg = distillation_divergence(student[1], teacher[1], temperature, "example") * temperature ** 2
    return F.cross_entropy(student[1], y), reg


def kd_match_terms(student: Outputs, teacher: Outputs, y: torch.Tensor, temperature: float) -> Terms:
    reg = sum(F.mse_loss(s.flatten(1), t.flatten(1)) for s, t in paired_layers(student[0], teacher[0]))
    reg = reg + distillation_divergence(student[1], teacher[1], temperature, "logit")
    return F.cross_entropy(student[1], y), reg


def rdl_terms(student: Outputs, teacher: Outputs, y: torch.Tensor) -> Terms:
    pairs = paired_layers(student[0], teacher[0]) + [(student[1], teacher[1])]
    reg = sum(F.mse_loss(centred_cosine_matrix(s).flatten(), centred_cosine_matrix(t).flatten()) for s, t in pairs)
    return F.cross_entropy(student[1], y), reg


def cka_terms(student: Outputs, teacher: Outputs, y: torch.Tensor) -> Terms:
    pairs = paired_layers(student[0], teacher[0]) + [(student[1], teacher[1])]
    return F.cross_entropy(student[1], y), -sum(linear_cka(s.flatten(1), t.flatten(1)) for s, t in pairs)


def attention_terms(student: Outputs, teacher: Outputs, y: torch.Tensor) -> Terms:
    reg = 0.0
    for s, t in paired_layers(student[0], teacher[0]):
        target = attention_map(t, t.shape[-1])
        reg = reg + F.mse_loss(attention_map(s, target.shape[1]), target)
    return F.cross_entropy(student[1], y), torch.as_tensor(reg, device=y.device)


def _orbit_of_outputs(orbit: StaticLearnedEquivariance, outputs: Outputs, g: torch.Tensor, n: int = 1) -> torch.Tensor:
    """The orbit acting at ``g`` on every layer of ``outputs`` (layer ``l`` with its map ``l``, the logits with
    the last one), flattened and concatenated per example."""
    layers, logits = outputs
    acted = [orbit(features, g, index, n).flatten(1) for index, features in enumerate(layers.values())]
    return torch.cat(acted + [orbit(logits, g, len(layers), n).flatten(1)], dim=1)


def _outputs_of(outputs: Outputs, rows: slice) -> Tuple[Outputs, torch.Tensor]:
    """``outputs`` cut to ``rows``, and those rows' layers and logits flattened and concatenated per example."""
    layers = {name: features[rows] for name, features in outputs[0].items()}
    logits = outputs[1][rows]
    return (layers, logits), torch.cat([f.flatten(1) for f in layers.values()] + [logits.flatten(1)], dim=1)


def equiv_transfer_terms(student: nn.Module, orbit: StaticLearnedEquivariance, x: torch.Tensor, y: torch.Tensor,
                         generator: torch.Generator, with_logits: bool = False):
    """The student learns the orbit's equivariance: its outputs on orbit(x, g) should be the orbit acting on
    its outputs on x. ``with_logits``: also return the student's logits on ``x``."""
    b = x.shape[0]
    x = x.reshape(b, 1, -1)
    g = torch.randint(GROUP_ELEMENTS, (b,), generator=generator).to(x.device)
    outputs = student(torch.cat([x, orbit(x, g)], dim=0))
    plain, _ = _outputs_of(outputs, slice(None, b))
    _, of_transformed = _outputs_of(outputs, slice(b, None))
    logits = outputs[1].flatten(1)
    reg = F.mse_loss(_orbit_of_outputs(orbit, plain, g), of_transformed) + F.cross_entropy(logits[b:], y)
    main = F.cross_entropy(logits[:b], y)
    return (main, reg, logits[:b]) if with_logits else (main, reg)


def equiv_learn_terms(orbit: StaticLearnedEquivariance, network: nn.Module, x: torch.Tensor, settings: Mapping[str, Any],
                      generator: torch.Generator) -> Terms:
    """The orbit learns an action under which ``network`` is equivariant, invertible and not the identity."""
    b = x.shape[0]
    x = x.reshape(b, 1, -1)
    g = torch.randint(0, GROUP_ELEMENTS, (b,), generator=generator).to(x.device)
    h = (g + torch.randint(1, GROUP_ELEMENTS, (b,), generator=generator).to(x.device)) % GROUP_ELEMENTS
    if settings["id_between_filters"]:
        both = orbit(x.repeat(2, 1, 1), torch.cat([g, h]))
        rho_g_x, rho_h_x = both[:b], both[b:]
    else:
        rho_g_x = orbit(x, g)
    outputs = network(torch.cat([x, rho_g_x], dim=0))
    plain, _ = _outputs_of(outputs, slice(None, b))
    _, of_transformed = _outputs_of(outputs, slice(b, None))
    loss = F.mse_loss(_orbit_of_outputs(orbit, plain, g), of_transformed) * settings["equiv_factor"]
    loss = loss + F.mse_loss(x.squeeze(), orbit(rho_g_x, -g).squeeze()) * settings["invertible_factor"]
    if settings["id_between_filters"]:
        similarity = F.cosine_similarity(rho_h_x.flatten(1), rho_g_x.flatten(1), dim=1, eps=1e-8).abs().mean()
    else:
        kernels = F.normalize(orbit.kernels.flatten(1), dim=1)
        size = kernels.shape[0]
        similarity = torch.triu(kernels @ kernels.T, diagonal=1).abs().sum() / (size * (size - 1) / 2)
    return loss + similarity * settings["identity_factor"], torch.zeros((), device=x.device)


def method_name(forward: str) -> str:
    """The method a ``forward`` value names: the original's ``"default"`` is the plain cross-entropy, ``"ce"``."""
    return "ce" if forward == "default" else forward


#: ``terms(student, teacher, x, y, settings, generator) -> (main, reg, logits)``: a method's two terms and the
#: student's logits on ``x`` (None where the student is the learned orbit), which the evaluation counts
MethodTerms = Callable[..., Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]]


def method_terms(forward: str) -> MethodTerms:
    """The terms of the method ``forward`` (the original's switch; see ``MethodTerms``)."""
    forward = method_name(forward)
    if forward == "equiv_transfer":
        def transfer(student, teacher, x, y, settings, generator):
            main, reg, logits = equiv_transfer_terms(student, teacher, x, y, generator, with_logits=True)
            return main, reg, logits
        return transfer
    if forward == "equiv_learn":
        return lambda student, teacher, x, y, settings, generator: (
            *equiv_learn_terms(student, teacher, x, settings, generator), None)

    def on_outputs(student, teacher, x, y, settings, generator):
        own = student(x)
        if forward == "ce":
            return (*ce_terms(own, y), own[1])
        with torch.no_grad():
            theirs = teacher(x)
        if forward == "kd":
            terms = kd_terms(own, theirs, y, settings["softmax_temp"])
        elif forward == "kd_match":
            terms = kd_match_terms(own, theirs, y, settings["softmax_temp"])
        else:
            terms = {"rdl": rdl_terms, "cka": cka_terms, "attention": attention_terms}[forward](own, theirs, y)
        return (*terms, own[1])

    return on_outputs


# ---------------------------------------------------------------------- checks


def check_simple_trainer_config(config: Mapping[str, Any]) -> None:
    """``ValueError`` (one line) for settings the step loop cannot train as the original did."""
    forward = config.get("forward", "default")
    if forward not in FORWARD_METHODS + ("default", "ce"):
        hint = did_you_mean(forward, FORWARD_METHODS + ("default", "ce"))
        raise ValueError(f"forward={forward!r} is no method of orbit_transfer's simple trainer{hint} (the original "
                         "trained any other value with the plain cross-entropy; name it 'ce' if that is meant)")
    if forward not in ("default", "ce") and not config.get("student_model") and config.get("teacher") is None:
        raise ValueError(f"forward={forward!r} needs a teacher: set student_model (the step's model is then the "
                         "teacher, from the previous step's weights), as the recipes do")
    if config.get("main_loop_modules"):
        raise ValueError(f"main_loop_modules={config['main_loop_modules']!r}: orbit_transfer's step loop runs no "
                         "main-loop modules")
    for name in ("total_steps", "batch_size", "eval_every", "patience", "lr_decay_steps"):
        value = config.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}={value!r} is not a whole number")
    if config["batch_size"] < 1:
        raise ValueError(f"batch_size={config['batch_size']} must be positive")
    if config.get("restore_best", True) and not 0 < config["eval_every"] <= config["total_steps"]:
        raise ValueError(f"restore_best with eval_every={config['eval_every']} and total_steps={config['total_steps']}: "
                         "no evaluation after step 0 keeps a best model (the original crashed at the end)")


def check_models(forward: str, student: nn.Module, teacher: Optional[nn.Module]) -> None:
    """What the method needs of the student and the teacher, before the first step (``ValueError``, one line)."""
    orbit_student = isinstance(student, StaticLearnedEquivariance)
    orbit_teacher = isinstance(teacher, StaticLearnedEquivariance)
    if forward == "equiv_learn":
        if not orbit_student or teacher is None or orbit_teacher:
            raise ValueError("forward='equiv_learn' trains a learned orbit (student_model of type "
                             "'static_equivariance_transfer') on a trained network (the step's model)")
    elif forward == "equiv_transfer":
        if orbit_student or not orbit_teacher:
            raise ValueError("forward='equiv_transfer' trains a network (student_model) with a learned orbit as the "
                             "teacher (the step's model, of type 'static_equivariance_transfer')")
    elif orbit_student or orbit_teacher:
        raise ValueError(f"forward={forward!r}: a learned orbit only takes part in 'equiv_learn' and 'equiv_transfer'")
    network = teacher if forward == "equiv_learn" else student
    orbit = student if forward == "equiv_learn" else teacher
    if forward in ("equiv_learn", "equiv_transfer"):
        layers = len(original_layers_of(network))
        if orbit.n_layers != layers + 1:
            raise ValueError(f"forward={forward!r}: the learned orbit acts on {orbit.n_layers} layers (its layers), the "
                             f"network has {layers} layers and the logits, so {layers + 1} are needed")


# ---------------------------------------------------------------------- data


def split_arrays(loaders: Any) -> Tuple[torch.Tensor, torch.Tensor]:
    """A split's examples and labels as two tensors, in the loader's own order (its data set's)."""
    loader = next(iter(loaders.values())) if isinstance(loaders, Mapping) else loaders
    dataset = getattr(loader, "unaugmented_dataset", None) or loader.dataset
    if not len(dataset):
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    batches = [batch[:2] for batch in DataLoader(dataset, batch_size=LOSS_CHUNK, shuffle=False)]
    return torch.cat([x for x, _ in batches]).float(), torch.cat([y for _, y in batches]).long()


def task_key(loaders: Any) -> str:
    return next(iter(loaders)) if isinstance(loaders, Mapping) else "img_classification"


# ---------------------------------------------------------------------- the loop


class StepLoop:
    """One run of the step loop (module docstring): ``StepLoop(...).train() -> (score, output, weights)``."""

    def __init__(self, model: nn.Module, dataloaders: Mapping[str, Any], seed: int, teacher: Optional[nn.Module],
                 settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.forward = method_name(settings["forward"])
        self.device = resolve_device(settings.get("device", "auto"), bool(settings.get("force_cpu")))
        self.limit = int(settings.get("fast_dev_run") or 0)
        self.seed = seed
        self.dataloaders = dataloaders
        check_models(self.forward, model, teacher)
        self.model = model.to(self.device)
        self.student = self.model if isinstance(model, StaticLearnedEquivariance) else \
            IntermediateLayerWrapper(self.model, original_layers_of(self.model))
        self.teacher = None
        if teacher is not None:
            teacher = freeze_teacher(teacher, self.device)
            self.teacher = teacher if isinstance(teacher, StaticLearnedEquivariance) else \
                IntermediateLayerWrapper(teacher, original_layers_of(teacher))
        self.terms = method_terms(self.forward)
        self.classifies = not isinstance(model, StaticLearnedEquivariance)
        self.maximize = not settings["select_on_loss"]
        for name in ("tensorboard_dir", "mlflow_uri"):
            if settings.get(name):
                logger.warning("%s is set, but orbit_transfer's step loop writes no %s log", name,
                               "TensorBoard" if name == "tensorboard_dir" else "MLflow")

    # -------------------------------------------------------------- evaluation

    def measures(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> Tuple[Dict[str, float], float]:
        """(the split's means: loss, ce_loss, reg[, accuracy]; the objective the original selected on)."""
        gamma = self.settings["gamma"]
        chunks: List[Tuple[int, float, float]] = []
        correct = torch.zeros(len(x), dtype=torch.bool)
        with torch.no_grad():
            for start in range(0, len(x), LOSS_CHUNK):
                xb, yb = x[start:start + LOSS_CHUNK].to(self.device), y[start:start + LOSS_CHUNK].to(self.device)
                main, reg, logits = self.terms(self.student, self.teacher, xb, yb, self.settings, generator)
                chunks.append((len(xb), float(main), float(reg)))
                if logits is not None:
                    correct[start:start + len(xb)] = (logits.argmax(-1) == yb).cpu()
        n = max(len(x), 1)
        main = sum(size * value for size, value, _ in chunks) / n
        reg = sum(size * value for size, _, value in chunks) / n
        results = {"loss": (1 - gamma) * main + gamma * reg, "ce_loss": main, "reg": reg}
        if self.classifies:
            results["accuracy"] = 100.0 * float(correct.sum()) / n
        if self.settings["select_on_loss"]:
            whole = [chunk for chunk in chunks if chunk[0] == LOSS_CHUNK] if len(x) > LOSS_CHUNK else chunks
            objective = (1 - gamma) * sum(c[1] for c in whole) + gamma * sum(c[2] for c in whole)
        elif self.classifies:
            counted = (len(x) // ACCURACY_CHUNK) * ACCURACY_CHUNK if len(x) > ACCURACY_CHUNK else len(x)
            objective = 100.0 * float(correct[:counted].sum()) / n
        else:  # the original's accuracy of a learned orbit
            objective = 0.0
        return results, objective

    def split(self, name: str) -> Tuple[torch.Tensor, torch.Tensor]:
        x, y = split_arrays(self.dataloaders[name])
        if self.limit:
            x, y = x[: self.limit * LOSS_CHUNK], y[: self.limit * LOSS_CHUNK]
        return x, y

    # -------------------------------------------------------------- training

    def train(self) -> Tuple[float, Dict[str, Any], Dict[str, torch.Tensor]]:
        settings = self.settings
        set_random_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        evaluation_generator = torch.Generator().manual_seed(self.seed + 1)
        shifts = random.Random(self.seed)
        optimizer = torch.optim.Adam(self.model.parameters(), settings["learning_rate"],
                                     weight_decay=settings["weight_decay"])
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=settings["lr_decay"],
                                                               patience=settings["patience"])
        x_train, y_train = split_arrays(self.dataloaders["train"])
        x_train, y_train = x_train.to(self.device), y_train.to(self.device)
        x_val, y_val = self.split("validation")
        task = task_key(self.dataloaders["train"])
        batch, gamma = settings["batch_size"], settings["gamma"]
        total_steps = min(settings["total_steps"], self.limit) if self.limit else settings["total_steps"]
        eval_every = 1 if self.limit else settings["eval_every"]

        log: Dict[str, Any] = {"Training": {task: {"loss": [0.0]}}, "Validation": {task: {}}, "step": [0], "lr": [0.0]}
        best = 0.0 if self.maximize else 1e10  # the original's starting values (an accuracy of 0 is no improvement)
        best_state, best_step, patience_counter, decays, since = None, None, 0, 0, []
        for step in range(total_steps + 1):
            start = (step * batch) % len(x_train)
            x, y = x_train[start:start + batch], y_train[start:start + batch]
            if settings["augment"]:
                x = torch.roll(x, shifts.randint(0, settings["augment"]), dims=-1)
            main, reg, _ = self.terms(self.student, self.teacher, x, y, settings, generator)
            loss = (1.0 - gamma) * main + gamma * reg
            if not torch.isfinite(loss):
                named = [name for name, term in (("main", main), ("reg", reg)) if not torch.isfinite(term)]
                raise TrainingDiverged(f"training diverged at step {step}: the {self.forward} loss ({' and '.join(named) or 'total'}) "
                                       f"is not finite; {ADVICE}")
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            since.append(float(loss.detach()))
            if eval_every > 0 and step % eval_every == 0:
                results, objective = self.measures(x_val, y_val, evaluation_generator)
                for name, value in results.items():
                    log["Validation"][task].setdefault(name, [0.0]).append(value)
                log["Training"][task]["loss"].append(sum(since) / len(since))
                log["step"].append(step)
                log["lr"].append(optimizer.param_groups[0]["lr"])
                since = []
                better = objective > best if self.maximize else objective < best
                if better and step > 0:
                    best, best_step, patience_counter = objective, step, 0
                    best_state = copy.deepcopy(self.model.state_dict())
                else:
                    patience_counter += 1
                logger.info("step %d: validation %s (objective %.4g), lr %.3g", step,
                            ", ".join(f"{k} {v:.4g}" for k, v in results.items()), objective,
                            optimizer.param_groups[0]["lr"])
                if patience_counter >= settings["patience"]:
                    if decays >= settings["lr_decay_steps"]:
                        logger.info("step %d: early stopping after %d decays", step, decays)
                        break
                    decays += 1
                    patience_counter = 0
                scheduler.step(objective)
        if settings["restore_best"]:
            if best_state is None:
                logger.warning("restore_best: no evaluation after step 0 kept a best model; the last weights are kept")
            else:
                self.model.load_state_dict(best_state)
        final = self.final_evaluation(task)
        score = final["validation"][task]["loss" if settings["select_on_loss"] or not self.classifies else "accuracy"]
        output = {"tracker": {"log": log}, "final": final, "best_step": best_step, "steps": step}
        return score, output, {name: value.detach().cpu() for name, value in self.model.state_dict().items()}

    def final_evaluation(self, task: str) -> Dict[str, Any]:
        """Every split the data has (training, validation and the test sets), with the kept weights."""
        generator = torch.Generator().manual_seed(self.seed + 2)
        final: Dict[str, Any] = {}
        for name in self.dataloaders:
            x, y = self.split(name)
            if len(x):
                final[name] = {task: self.measures(x, y, generator)[0]}
        return final


def simple_trainer(
    model: nn.Module,
    dataloaders: Mapping[str, Any],
    seed: int,
    uid: Optional[Mapping[str, Any]] = None,
    cb: Optional[Callable[..., None]] = None,
    teacher_model: Optional[nn.Module] = None,
    **config: Any,
) -> Tuple[float, Dict[str, Any], Dict[str, torch.Tensor]]:
    """nnfabrik's trainer function for the compat ``SimpleTrainerConfig`` (the module docstring): trains
    ``model`` (the student; with ``student_model`` the pipeline built it and the step's model is
    ``teacher_model``). ``cb`` (checkpoints) is not used: the loop keeps none.

    Returns ``(score, output, weights)``: the validation accuracy of the kept weights (the loss, for a learned orbit
    or ``select_on_loss``); ``{"tracker": {"log": the validation measures and the mean training loss at every
    evaluation, "step", "lr"}, "final": every split's measures, "best_step", "steps"}``; the weights on the CPU.
    """
    check_simple_trainer_config(config)
    return StepLoop(model, dataloaders, seed, teacher_model, config).train()


simple_trainer.check_config = check_simple_trainer_config  # type: ignore[attr-defined]
# the recipe's chain check runs it on the untrained student and teacher, before anything trains
simple_trainer.check_models = lambda config, student, teacher: check_models(  # type: ignore[attr-defined]
    method_name(config.get("forward", "default")), student, teacher)
#: the fields of the compat ``SimpleTrainerConfig`` that this function reads (besides ``TrainerConfig``'s)
simple_trainer.config_fields = frozenset(STEP_LOOP_FIELDS)  # type: ignore[attr-defined]

__all__ = ["simple_trainer", "StepLoop", "method_name", "method_terms", "check_simple_trainer_config", "check_models"]
