"""Fault injection on local runs (issue 11): kill ``nntransfer run`` at random points, then check that nothing
was lost, damaged or trained twice.

    python bench/fault_injection_local.py [--rounds 3] [--kills 6] [--chains 3] [--steps 3] [--epochs 4]
                                          [--sleep 0.15] [--concurrent 0.3] [--seed 0] [--keep DIR]

A toy recipe (``--chains`` chains of ``--steps`` steps, each of ``--epochs`` epochs that sleep ``--sleep``
seconds, checkpointing every epoch and handing data on to the next step) first runs uninterrupted in a
folder of its own: the reference. Then each round starts from an empty work folder and ``--kills`` times
starts ``nntransfer run RECIPE --workdir W`` (with probability ``--concurrent`` two runs at once) and sends
SIGKILL, SIGTERM or SIGINT to it at a random moment; a final run completes the recipe. Checked each round:

* the final run exits 0 and every step is done;
* every step's score, output, weights and handed-on data are identical to the reference;
* no step was trained to completion twice and no two runs trained one step at once: every training
  attempt starts right after the last checkpoint the attempts before it wrote (the toy trainer logs each
  start, epoch and checkpoint to ``FAULT_LOG``), and attempts of one step never interleave;
* nothing is left behind: no temporary files, failure records, checkpoints or locks.

Prints a summary; exits 1 if anything was violated. Its short version is ``tests/test_local_faults.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from nntransfer.configs import (
    DatasetConfig,
    Description,
    Experiment,
    ModelConfig,
    TrainerConfig,
    TransferExperiment,
    codec,
)
from nntransfer.configs.codec import make_hash

BENCH = Path(__file__).resolve().parent
MODULE = "fault_injection_local"
SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT}

# ---------------------------------------------------------------------- the toy steps (run in the subprocesses)


class FaultDatasetConfig(DatasetConfig):
    fn = f"{MODULE}.fault_dataset"

    def __init__(self, **kwargs):
        self.size = 3
        super().__init__(**kwargs)


class FaultModelConfig(ModelConfig):
    fn = f"{MODULE}.fault_model"

    def __init__(self, **kwargs):
        self.width = 3
        super().__init__(**kwargs)


class FaultTrainerConfig(TrainerConfig):
    fn = f"{MODULE}.fault_trainer"

    def __init__(self, **kwargs):
        self.epochs = 4
        self.sleep = 0.1
        self.increment = 1.0
        self.compute_transfer_data = True
        super().__init__(**kwargs)


def fault_dataset(seed, transfer_data=None, **config):
    cfg = FaultDatasetConfig.from_dict(config)
    return {"train": {"toy": list(range(cfg.size))}, "transfer_data": transfer_data}


def fault_model(dataloaders, seed, state_dict=None, transfer=False, **config):
    cfg = FaultModelConfig.from_dict(config)
    model = nn.Linear(cfg.width, cfg.width)
    with torch.no_grad():
        generator = torch.Generator().manual_seed(seed)
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model


def _log(**event: Any) -> None:
    if os.environ.get("FAULT_LOG"):
        with open(os.environ["FAULT_LOG"], "a") as log:  # one short append per line: lines never mix
            log.write(json.dumps({**event, "pid": os.getpid(), "time": time.time()}) + "\n")


def fault_trainer(model, dataloaders, seed, uid=None, cb=None, **config):
    """Deterministic "training" that resumes like the real trainer: each epoch adds seeded noise (and the
    received data) to the weights and checkpoints weights and history."""
    cfg = FaultTrainerConfig.from_dict(config)
    step = make_hash(dict(uid))[:12]
    state = {"action": "last", "maximize_score": False, "net": model}
    cb(uid=uid, epoch=0, model=model, state=state)
    first = int(state.get("epoch", 0)) + 1
    history = list(state.get("history", []))
    _log(event="start", step=step, first_epoch=first)
    received = dataloaders.get("transfer_data") or {}
    extra = float(np.sum(received["soft"])) if "soft" in received else 0.0
    for epoch in range(first, cfg.epochs + 1):
        time.sleep(cfg.sleep)
        noise = torch.randn(model.weight.shape, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        with torch.no_grad():
            model.weight.mul_(0.9).add_(cfg.increment * noise + 0.01 * extra)
        history.append(float(model.weight.detach().sum()))
        _log(event="epoch", step=step, epoch=epoch)
        cb(uid=uid, epoch=epoch, model=model, state={"action": "save", "score": history[-1], "maximize_score": False,
                                                       "history": history, "keep_last_n": 1, "keep_best_n": 1})
        _log(event="checkpoint", step=step, epoch=epoch)
    _log(event="end", step=step)
    output = {"history": history, "final": {"weight_sum": history[-1] if history else 0.0}}
    if cfg.compute_transfer_data:
        output["transfer_data"] = {"soft": model.weight.detach().numpy().copy() * 2}
    return (history[-1] if history else 0.0), output, model.state_dict()


def make_chains(chains: int = 3, steps: int = 3, epochs: int = 4, sleep: float = 0.1) -> Dict[Description, TransferExperiment]:
    """The recipe's transfer experiments: every step of every chain different."""
    return {
        Description(name=f"chain{c}", seed=c + 1): TransferExperiment([
            Experiment(FaultDatasetConfig(), FaultModelConfig(),
                       FaultTrainerConfig(epochs=epochs, sleep=sleep, increment=1.0 + c + 0.1 * s, data_transfer=s > 0),
                       seed=c + 1, comment=f"chain{c}-step{s}")
            for s in range(steps)
        ])
        for c in range(chains)
    }  # fmt: skip


RECIPE = """from fault_injection_local import make_chains

transfer_experiments = make_chains({chains}, {steps}, {epochs}, {sleep})
"""

# ---------------------------------------------------------------------- the harness


class Harness:
    """Starts runs of one recipe and checks their work folders."""

    def __init__(self, root: Path, chains: int, steps: int, epochs: int, sleep: float) -> None:
        self.root, self.epochs = root, epochs
        self.recipe = root / f"faultrecipe_{os.getpid()}"
        self.recipe.mkdir(parents=True)
        (self.recipe / "__init__.py").write_text(RECIPE.format(chains=chains, steps=steps, epochs=epochs, sleep=sleep))
        self.chains = make_chains(chains, steps, epochs, sleep)
        self.keys = [chain.step_key(level) for chain in self.chains.values() for level in range(len(chain))]

    def start(self, workdir: Path, log: Path) -> subprocess.Popen:
        env = dict(os.environ, FAULT_LOG=str(log), PYTHONPATH=os.pathsep.join([str(BENCH), os.environ.get("PYTHONPATH", "")]))
        workdir.parent.mkdir(parents=True, exist_ok=True)
        with open(workdir.parent / f"run.{time.time_ns()}.out", "w") as output:  # what each run printed
            return subprocess.Popen(
                [sys.executable, "-m", "nntransfer", "run", str(self.recipe), "--workdir", str(workdir), "--quiet"],
                stdout=output, stderr=subprocess.STDOUT, env=env, cwd=self.root,
            )  # fmt: skip

    def run_to_end(self, workdir: Path, log: Path, timeout: float = 300) -> int:
        return self.start(workdir, log).wait(timeout)

    def results(self, workdir: Path) -> Dict[str, Any]:
        from nntransfer.pipeline.local import LocalStore

        store = LocalStore(workdir)
        found = {}
        for key in self.keys:
            stored = store.load(key)
            found[make_hash(key)] = (stored.score, codec.dumps(stored.output), store.load_weights(key), store.load_transfer_data(key))
        return found


def compare(results: Dict[str, Any], reference: Dict[str, Any]) -> List[str]:
    problems = []
    for step, (score, output, weights, data) in reference.items():
        got_score, got_output, got_weights, got_data = results[step]
        if got_score != score or got_output != output:
            problems.append(f"step {step[:12]}: score or output differs from the uninterrupted run")
        if set(got_weights) != set(weights) or not all(torch.equal(got_weights[k], weights[k]) for k in weights):
            problems.append(f"step {step[:12]}: weights differ from the uninterrupted run")
        if (data is None) != (got_data is None) or (data and not all(np.array_equal(got_data[k], data[k]) for k in data)):
            problems.append(f"step {step[:12]}: handed-on data differs from the uninterrupted run")
    return problems


def check_log(log: Path, epochs: int, stats: Counter) -> List[str]:
    """Every attempt of a step starts right after the last checkpoint before it (one more if it was killed
    after writing a checkpoint but before logging it); attempts of one step never interleave; no attempt
    trains a step that an earlier one completed."""
    problems = []
    checkpointed: Dict[str, int] = defaultdict(int)
    trained: Dict[str, int] = defaultdict(int)
    current: Dict[str, int] = {}  # step -> pid of its latest attempt
    completed: Dict[str, int] = defaultdict(int)
    for line in log.read_text().splitlines() if log.exists() else []:
        event = json.loads(line)
        step, pid, kind = event["step"], event["pid"], event["event"]
        if kind == "start":
            stats["attempts"] += 1
            expected = checkpointed[step] + 1
            allowed = {expected, expected + 1} if trained[step] == expected else {expected}
            if event["first_epoch"] not in allowed:
                problems.append(f"step {step}: an attempt started at epoch {event['first_epoch']}, the last checkpoint was epoch {checkpointed[step]}")
            if event["first_epoch"] > 1:
                stats["resumed attempts"] += 1
            if completed[step] and event["first_epoch"] <= epochs:
                problems.append(f"step {step}: trained again after it was completed")
            current[step] = pid
        elif current.get(step) != pid:
            problems.append(f"step {step}: pid {pid} trained it while pid {current.get(step)} did too")
        elif kind == "epoch":
            stats["epochs trained"] += 1
            if event["epoch"] <= trained[step]:
                stats["epochs trained again (in progress at a kill)"] += 1
            trained[step] = max(trained[step], event["epoch"])
        elif kind == "checkpoint":
            checkpointed[step] = event["epoch"]
        elif kind == "end":
            completed[step] += 1
    return problems


def leftovers(workdir: Path) -> List[str]:
    problems = [f"temporary file left: {p}" for p in workdir.rglob("*.tmp")]
    problems += [f"failure record left: {p}" for p in (workdir / "failed").glob("*")]
    problems += [f"checkpoints left: {p}" for p in (workdir / "checkpoints").glob("*/*")]
    problems += [f"lock left: {p}" for p in (workdir / "locks").glob("*")]
    return problems


def log_events(log: Path) -> List[Dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def plan_signal(startup: float, left: float, rng: random.Random) -> Dict[str, Any]:
    """When and how to signal one run: a quarter of the time at a random moment of its start-up (nothing
    written yet), else a random time after it began training (its first logged event) and before the work
    left is done; the signal is SIGKILL, SIGTERM or SIGINT."""
    name = rng.choice(sorted(SIGNALS))
    if rng.random() < 0.25 or left <= 0:
        return {"signal": name, "after_start": rng.uniform(0, startup)}
    return {"signal": name, "after_training": rng.uniform(0, left)}


def one_round(harness: Harness, folder: Path, kills: int, concurrent: float, timing: Dict[str, float], rng: random.Random, stats: Counter) -> List[str]:
    """``kills`` interrupted runs (some of them two at once), then a run to the end; returns the violations.
    ``timing``: seconds of start-up and of the whole work, from the reference run (see :func:`plan_signal`)."""
    workdir, log = folder / "work", folder / "log.jsonl"
    total_epochs = len(harness.keys) * harness.epochs
    problems: List[str] = []
    for _ in range(kills):
        done = len({(e["step"], e["epoch"]) for e in log_events(log) if e["event"] == "checkpoint"})
        left = timing["work"] * max(0.0, 1 - done / total_epochs)
        runs = [harness.start(workdir, log)]
        if rng.random() < concurrent:  # two runs on one folder, each signalled on its own plan
            runs.append(harness.start(workdir, log))
            stats["concurrent pairs"] += 1
        begun = time.time()
        plans = {run.pid: plan_signal(timing["startup"], left, rng) for run in runs}
        training_since: Dict[int, float] = {}
        while plans:
            events = log_events(log)
            for run in runs:
                plan = plans.get(run.pid)
                if plan is None:
                    continue
                if run.poll() is not None:  # it finished (or failed) before its moment
                    del plans[run.pid]
                    stats["finished before its signal"] += 1
                    if run.returncode != 0:
                        problems.append(f"run {run.pid} exited with {run.returncode} before it was signalled")
                    continue
                if run.pid not in training_since and any(e["pid"] == run.pid for e in events):
                    training_since[run.pid] = time.time()
                if "after_start" in plan:
                    due = time.time() >= begun + plan["after_start"]
                else:
                    due = run.pid in training_since and time.time() >= training_since[run.pid] + plan["after_training"]
                if due:
                    run.send_signal(SIGNALS[plan["signal"]])
                    stats[f"SIG{plan['signal']} while {'starting' if 'after_start' in plan else 'training'}"] += 1
                    del plans[run.pid]
            time.sleep(0.02)
        for run in runs:
            try:
                run.wait(60)
            except subprocess.TimeoutExpired:
                problems.append(f"run {run.pid} did not stop within 60 s of its signal")
                run.kill()
                run.wait()
    code = harness.run_to_end(workdir, log)
    if code != 0:
        problems.append(f"the final run exited with {code}")
    return problems + check_log(log, harness.epochs, stats) + leftovers(workdir)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kills", type=int, default=6, help="interrupted runs per round")
    parser.add_argument("--chains", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--sleep", type=float, default=0.15, help="seconds per epoch")
    parser.add_argument("--concurrent", type=float, default=0.3, help="share of kills with two runs at once")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="keep the work folders here (default: a temporary folder, removed)")
    args = parser.parse_args(argv)

    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    import fault_injection_local as steps  # the module the subprocesses import: the same config classes

    root = Path(args.keep or tempfile.mkdtemp(prefix="nnt_faults_"))
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    stats: Counter = Counter()
    violations: List[str] = []
    try:
        harness = steps.Harness(root, args.chains, args.steps, args.epochs, args.sleep)
        started = time.time()
        reference_log = root / "reference" / "log.jsonl"
        if harness.run_to_end(root / "reference" / "work", reference_log) != 0:
            print(f"the uninterrupted run failed; see {root}/reference", file=sys.stderr)
            return 1
        times = [e["time"] for e in log_events(reference_log)]
        timing = {"startup": times[0] - started, "work": times[-1] - times[0]}
        reference = harness.results(root / "reference" / "work")
        violations += [f"reference: {p}" for p in check_log(root / "reference" / "log.jsonl", args.epochs, Counter())]
        for number in range(args.rounds):
            folder = root / f"round{number}"
            problems = one_round(harness, folder, args.kills, args.concurrent, timing, rng, stats)
            if not any("final run" in p for p in problems):
                problems += compare(harness.results(folder / "work"), reference)
            violations += [f"round {number}: {p}" for p in problems]
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"fault injection, local work folder: {args.rounds} rounds x {args.kills} interrupted runs, "
          f"{len(harness.keys)} steps of {args.epochs} epochs each ({time.time() - started:.0f}s; a run: "
          f"{timing['startup']:.1f}s start-up, {timing['work']:.1f}s work)")
    for name, count in sorted(stats.items()):
        print(f"  {name}: {count}")
    print(f"  violations: {len(violations)}")
    for violation in violations:
        print(f"    {violation}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
