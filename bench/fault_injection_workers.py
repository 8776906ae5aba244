"""Fault injection on distributed workers (issue 11): kill ``nntransfer worker`` processes at random times,
start new ones, then check that nothing was lost, damaged or trained twice.

    python bench/fault_injection_workers.py [--workers 3] [--rounds 2] [--kills 6] [--chains 4] [--steps 2]
        [--epochs 5] [--sleep 0.4] [--heartbeat 3] [--seed 0] [--keep DIR] [--prefix nnt_faults]

Needs the database server (``DJ_HOST``/``DJ_USER``/``DJ_PASS``, default 127.0.0.1 as root). A toy recipe
(``--chains`` chains of ``--steps`` steps, each of ``--epochs`` epochs that sleep ``--sleep`` seconds,
checkpointing every epoch and handing data on to the next step) first runs uninterrupted in a schema of its
own (in this process, through the same ``DataJointStore``): the reference. Each round then starts ``--workers`` workers on a fresh schema and,
``--kills`` times, picks a random worker (mostly one that is training) at a random moment and sends it
SIGKILL, SIGTERM or SIGINT, or kills its database connection (``KILL <id>``, the worker loses the
database mid-job); each victim is replaced by a new worker. The workers left run to the end, and a final
worker completes whatever is left. Checked each round:

* workers that were not interrupted exit 0; the final worker exits 0 and every step is done;
* every step's score, output, weights and handed-on data are identical to the reference;
* no step was trained to completion twice and no two workers trained one step at once: every training
  attempt starts right after the last checkpoint the attempts before it wrote (the toy trainer logs each
  start, epoch and checkpoint to ``FAULT_LOG``), attempts of one step never interleave, and none trains a
  step again after an attempt completed it;
* nothing is left behind: no reservations or job errors, no checkpoint rows, no heartbeats;
* the store's file checks: a same-size byte flip in a finished step's weights and handed-on data, and
  another step's valid weights file copied over a finished step's, are refused when loaded
  (``DamagedStep``), never loaded; a worker then finds both steps damaged, trains them again, and the
  results equal the reference again;
* store files that no row references (a worker killed while uploading a file or before its row was
  committed) are counted, and ``nntransfer gc`` (``collect_garbage``) removes them all, and nothing a row
  references.

The schemas (and the nnfabrik core schema) the script creates are dropped, and its store folder removed,
at the end. Prints a summary; exits 1 on a violation.
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
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch import nn

from nntransfer.configs import DatasetConfig, Description, Experiment, ModelConfig, TrainerConfig, TransferExperiment
from nntransfer.configs.codec import make_hash

BENCH = Path(__file__).resolve().parent
MODULE = "fault_injection_workers"
SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT}
FAULTS = ("KILL", "TERM", "INT", "CONNECTION")

# ---------------------------------------------------------------------- the toy steps (run in the workers)


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
        cb(
            uid=uid,
            epoch=epoch,
            model=model,
            state={
                "action": "save",
                "score": history[-1],
                "maximize_score": False,
                "history": history,
                "keep_last_n": 1,
                "keep_best_n": 1,
            },
        )
        _log(event="checkpoint", step=step, epoch=epoch)
    _log(event="end", step=step)
    output = {"history": history, "final": {"weight_sum": history[-1] if history else 0.0}}
    if cfg.compute_transfer_data:
        output["transfer_data"] = {"soft": model.weight.detach().numpy().copy() * 2}
    return (history[-1] if history else 0.0), output, model.state_dict()


def make_chains(
    chains: int = 4, steps: int = 2, epochs: int = 5, sleep: float = 0.4
) -> Dict[Description, TransferExperiment]:
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


RECIPE = """from fault_injection_workers import make_chains

transfer_experiments = make_chains({chains}, {steps}, {epochs}, {sleep})
"""

# ---------------------------------------------------------------------- the harness


def log_events(log: Path) -> List[Dict[str, Any]]:
    events = []
    for line in log.read_text().splitlines() if log.exists() else []:
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written right now
            pass
    return events


class Harness:
    """Starts workers of one recipe on schemas with one prefix, and reads and checks what they stored."""

    def __init__(
        self, root: Path, prefix: str, chains: int, steps: int, epochs: int, sleep: float, heartbeat: float
    ) -> None:
        self.root, self.prefix, self.epochs = root, prefix, epochs
        self.recipe = root / f"faultrecipe_{os.getpid()}"
        self.recipe.mkdir(parents=True)
        (self.recipe / "__init__.py").write_text(RECIPE.format(chains=chains, steps=steps, epochs=epochs, sleep=sleep))
        self.chains = make_chains(chains, steps, epochs, sleep)
        self.keys = [chain.step_key(level) for chain in self.chains.values() for level in range(len(chain))]
        self.started: List[subprocess.Popen] = []
        self.env = dict(
            os.environ,
            PYTHONPATH=os.pathsep.join(filter(None, [str(BENCH), os.environ.get("PYTHONPATH")])),
            NNTRANSFER_HEARTBEAT_TIMEOUT=str(heartbeat),
            NNFABRIK_SCHEMA_NAME=f"{prefix}_core",
            NNTRANSFER_STORE=str(root / "store"),
        )

    def start(self, schema: str, log: Path) -> subprocess.Popen:
        with open(log.parent / f"worker.{time.time_ns()}.out", "w") as output:  # what each worker printed
            worker = subprocess.Popen(
                [sys.executable, "-m", "nntransfer", "worker", str(self.recipe), "--schema", schema, "--poll", "0.3",
                 "--order", "random", "--quiet"],
                stdout=output, stderr=subprocess.STDOUT, env=dict(self.env, FAULT_LOG=str(log)), cwd=self.root,
            )  # fmt: skip
        self.started.append(worker)
        return worker

    def stop_all(self) -> None:
        """Kill the workers still running (after an error in this script), so that none recreates a schema."""
        for worker in self.started:
            if worker.poll() is None:
                worker.kill()
                worker.wait()

    def run_here(self, schema: str, log: Path) -> None:
        """The uninterrupted run, in this process (the same steps, store and code path as a worker's)."""
        from nntransfer.recipes.loading import load_recipe
        from nntransfer.tables.store import DataJointStore

        os.environ["FAULT_LOG"] = str(log)
        try:
            DataJointStore(schema).run(load_recipe(str(self.recipe)), progress=False)
        finally:
            del os.environ["FAULT_LOG"]

    def results(self, schema: str) -> Dict[str, Any]:
        from nntransfer.tables.store import DataJointStore

        store = DataJointStore(schema, create=False)
        found = {}
        for key in self.keys:
            stored = store.load(key)
            found[make_hash(key)] = (
                stored.score,
                stored.output,
                store.load_weights(key),
                store.load_transfer_data(key),
            )
        return found


def same(a: Any, b: Any) -> bool:
    """Equal, recursively, with arrays and tensors compared element by element (bit for bit)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b))
    return a == b


def compare(results: Dict[str, Any], reference: Dict[str, Any]) -> List[str]:
    problems = []
    for step, (score, output, weights, data) in reference.items():
        got_score, got_output, got_weights, got_data = results[step]
        if got_score != score or not same(got_output, output):
            problems.append(f"step {step[:12]}: score or output differs from the uninterrupted run")
        if not same(got_weights, weights):
            problems.append(f"step {step[:12]}: weights differ from the uninterrupted run")
        if not same(got_data, data):
            problems.append(f"step {step[:12]}: handed-on data differs from the uninterrupted run")
    return problems


def check_log(log: Path, epochs: int, stats: Counter) -> List[str]:
    """Every attempt of a step starts right after the last checkpoint before it (one more if it was killed
    after writing a checkpoint but before logging it); attempts of one step never interleave; no attempt
    trains a step again after an earlier one completed it (one that was killed after the trainer returned
    and before the result was committed resumes after the last epoch: it trains nothing)."""
    problems = []
    checkpointed: Dict[str, int] = defaultdict(int)
    trained: Dict[str, int] = defaultdict(int)
    current: Dict[str, int] = {}  # step -> pid of its latest attempt
    completed: Dict[str, int] = defaultdict(int)
    for event in log_events(log):
        step, pid, kind = event["step"], event["pid"], event["event"]
        if kind == "start":
            stats["training attempts"] += 1
            expected = checkpointed[step] + 1
            allowed = {expected, expected + 1} if trained[step] == expected else {expected}
            if event["first_epoch"] not in allowed:
                problems.append(
                    f"step {step}: an attempt started at epoch {event['first_epoch']}, the last checkpoint was epoch {checkpointed[step]}"
                )
            if event["first_epoch"] > 1:
                stats["resumed attempts"] += 1
            if completed[step] and event["first_epoch"] <= epochs:
                problems.append(f"step {step}: trained again after an attempt completed it")
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
            if completed[step] > 1:
                stats["completed again after a kill before the commit (no epoch trained)"] += 1
    return problems


def leftovers(conn, schema: str, killed: set, stats: Counter) -> List[str]:
    """Reservations, job errors and checkpoint rows left; heartbeats left by workers that were not killed
    with SIGKILL (those cannot remove theirs: the next workers forget them after a few timeouts)."""
    problems = []
    for table, what in (("~jobs", "reservations or job errors"), ("transferred_checkpoint", "checkpoint rows")):
        count = conn.query(f"SELECT COUNT(*) FROM `{schema}`.`{table}`").fetchone()[0]
        if count:
            problems.append(f"{count} {what} left")
    pids = [pid for (pid,) in conn.query(f"SELECT pid FROM `{schema}`.`~heartbeat`").fetchall()]
    stats["heartbeats of SIGKILLed workers not yet forgotten"] += sum(pid in killed for pid in pids)
    problems += [f"heartbeat of worker {pid} left" for pid in pids if pid not in killed]
    return problems


def unreferenced_store_files(harness: Harness, schema: str) -> int:
    """Files of the schema's store folder that no row references (killed mid-upload)."""
    from nntransfer.tables import activate
    from nntransfer.tables.storage import file_paths

    tables = activate(schema, create=False)
    table = tables.TransferredTrainedModel
    referenced = set()
    for part, attribute in (
        (table.ModelStorage, "model_state"),
        (table.DataStorage, "transfer_data"),
        (tables.TransferredCheckpoint, "state"),
    ):
        referenced.update(file_paths(part(), attribute))
    on_disk = {str(p) for p in (harness.root / "store" / schema).rglob("*") if p.is_file()}
    return len(on_disk - referenced)


def flip_a_byte(path: str) -> None:
    data = bytearray(Path(path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(path).write_bytes(bytes(data))


def file_checks(harness: Harness, schema: str, folder: Path, rng: random.Random, stats: Counter, reference: Dict[str, Any]) -> List[str]:
    """Damage two finished steps' files as the fault-injection round found them loaded silently: a same-size
    byte flip (weights and handed-on data of one step), another step's valid weights file copied over a
    second step's. Loading must refuse each (``DamagedStep``); a worker must then train both steps again,
    and the results must equal the reference."""
    from nntransfer.tables.storage import file_paths
    from nntransfer.tables.store import DamagedStep, DataJointStore

    if len(harness.keys) < 3:  # two steps to damage and a third whose file is copied over one of them
        return []
    store = DataJointStore(schema, create=False)
    table = store.table
    flipped, swapped = rng.sample(harness.keys, 2)
    donor = next(key for key in harness.keys if key not in (flipped, swapped))
    damage = [(flipped, table.ModelStorage, "model_state", "byte flipped", store.load_weights),
              (flipped, table.DataStorage, "transfer_data", "byte flipped", store.load_transfer_data),
              (swapped, table.ModelStorage, "model_state", "another step's file copied over it", store.load_weights)]  # fmt: skip
    problems = []
    for key, part, attribute, how, load in damage:
        (path,) = file_paths(part & key, attribute)
        if how == "byte flipped":
            flip_a_byte(path)
        else:
            (other,) = file_paths(part & donor, attribute)
            shutil.copyfile(other, path)
        stats[f"stored files damaged: {how}"] += 1
        try:
            load(key)
        except DamagedStep:
            stats["damaged files refused when loaded"] += 1
        else:
            problems.append(f"step {make_hash(key)[:12]}: its {attribute} ({how}) was loaded without an error")
    log = folder / "repair.jsonl"
    worker = harness.start(schema, log)
    if worker.wait(timeout=600) != 0:
        problems.append(f"the worker after the damage exited with {worker.returncode}")
    retrained = {event["step"] for event in log_events(log) if event["event"] == "end"}
    for key in (flipped, swapped):
        if make_hash(key)[:12] in retrained:
            stats["damaged steps found and trained again"] += 1
        else:
            problems.append(f"step {make_hash(key)[:12]}: damaged, and not trained again")
    return problems + compare(harness.results(schema), reference)


def collect_orphans(harness: Harness, schema: str, stats: Counter) -> List[str]:
    """``nntransfer gc`` once every worker has stopped (no grace period needed): afterwards no store file is
    left that no row references."""
    from nntransfer.tables import activate
    from nntransfer.tables.storage import collect_garbage

    found = unreferenced_store_files(harness, schema)
    stats["store files no row references (left by killed workers)"] += found
    garbage = collect_garbage(activate(schema, create=False).schema, grace_seconds=0)
    stats["store files removed by gc"] += len(garbage.entries) + len(garbage.files)
    left = unreferenced_store_files(harness, schema)
    problems = [f"gc could not remove {error}" for error in garbage.errors]
    return problems + ([f"{left} store files no row references left after gc"] if left else [])


def kill_connection(conn, schema: str, pid: int) -> bool:
    """KILL the database connection with which worker ``pid`` holds a job in ``schema``; False if it holds none."""
    try:
        rows = conn.query(
            f"SELECT connection_id FROM `{schema}`.`~jobs` WHERE status='reserved' AND pid=%s", args=(pid,)
        ).fetchall()
        if not rows:
            return False
        conn.query(f"KILL {int(rows[0][0])}")
    except Exception:  # no jobs table yet, or the connection ended meanwhile
        return False
    return True


def one_round(
    harness: Harness, schema: str, folder: Path, workers: int, kills: int, rng: random.Random, stats: Counter, conn
) -> List[str]:
    """``workers`` workers, ``kills`` of them interrupted (and replaced), then a final worker; returns the
    violations."""
    folder.mkdir(parents=True)
    log = folder / "log.jsonl"
    problems: List[str] = []
    pool = [harness.start(schema, log) for _ in range(workers)]
    victims, sigkilled = set(), set()
    for _ in range(kills):
        time.sleep(rng.uniform(0.2, 2.0))
        while_training = rng.random() < 0.8  # else whatever it does: starting up, waiting, storing
        deadline = time.time() + 60
        while True:
            alive = [w for w in pool if w.poll() is None]
            training = {e["pid"] for e in log_events(log) if time.time() - e["time"] < 1.5}
            busy = [w for w in alive if w.pid in training]
            if busy or not while_training or not alive or time.time() > deadline:
                break
            time.sleep(0.05)
        if not alive:
            break
        victim = rng.choice(busy if busy and while_training else alive)
        fault = rng.choice(FAULTS)
        if fault == "CONNECTION" and not kill_connection(conn, schema, victim.pid):
            fault = "KILL"  # it holds no job right now
        if fault != "CONNECTION":
            victim.send_signal(SIGNALS[fault])
        if fault == "KILL":
            sigkilled.add(victim.pid)
        stats[
            f"{'SIG' + fault if fault != 'CONNECTION' else 'database connection killed'} while {'training' if victim.pid in training else 'starting or waiting'}"
        ] += 1
        victims.add(victim.pid)
        pool.append(harness.start(schema, log))
    for worker in pool:
        try:
            code = worker.wait(timeout=600)
        except subprocess.TimeoutExpired:
            problems.append(f"worker {worker.pid} did not finish within 600 s")
            worker.kill()
            continue
        if worker.pid not in victims and code != 0:
            problems.append(f"worker {worker.pid} exited with {code} though nothing interrupted it")
    final = harness.start(schema, log)
    if final.wait(timeout=600) != 0:
        problems.append(f"the final worker exited with {final.returncode}")
    stats["workers started"] += len(pool) + 1
    return problems + check_log(log, harness.epochs, stats) + leftovers(conn, schema, sigkilled, stats)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=3, help="workers running at once")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--kills", type=int, default=6, help="interrupted workers per round")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=0.4, help="seconds per epoch")
    parser.add_argument("--heartbeat", type=float, default=3.0, help="heartbeat timeout of the workers (seconds)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", help="keep the logs and the store folder here (default: a temporary folder, removed)")
    parser.add_argument("--prefix", default="nnt_faults", help="the schemas' names start with PREFIX_<random>_")
    args = parser.parse_args(argv)

    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    prefix = f"{args.prefix}_{uuid.uuid4().hex[:6]}"
    os.environ["NNFABRIK_SCHEMA_NAME"] = f"{prefix}_core"  # before nnfabrik's tables are imported
    import fault_injection_workers as steps  # the module the workers import: the same config classes

    from nntransfer.tables import database

    root = Path(args.keep or tempfile.mkdtemp(prefix="nnt_faults_"))
    root.mkdir(parents=True, exist_ok=True)
    database.configure(store_location=str(root / "store"))
    conn = database.connect()
    rng = random.Random(args.seed)
    stats: Counter = Counter()
    violations: List[str] = []
    started = time.time()
    harness = steps.Harness(root, prefix, args.chains, args.steps, args.epochs, args.sleep, args.heartbeat)
    try:
        reference_log = root / "reference" / "log.jsonl"
        reference_log.parent.mkdir(parents=True)
        harness.run_here(f"{prefix}_reference", reference_log)
        reference = harness.results(f"{prefix}_reference")
        violations += [f"reference: {p}" for p in check_log(reference_log, args.epochs, Counter())]
        for number in range(args.rounds):
            schema = f"{prefix}_round{number}"
            problems = one_round(harness, schema, root / f"round{number}", args.workers, args.kills, rng, stats, conn)
            if not any("final worker" in p for p in problems):
                problems += compare(harness.results(schema), reference)
                problems += steps.file_checks(harness, schema, root / f"round{number}", rng, stats, reference)
                problems += steps.collect_orphans(harness, schema, stats)
                problems += compare(harness.results(schema), reference)  # gc removed nothing a row references
            violations += [f"round {number}: {p}" for p in problems]
    finally:
        harness.stop_all()
        conn.query("SET FOREIGN_KEY_CHECKS=0")
        for (name,) in conn.query("SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
                                  args=(prefix.replace("_", r"\_") + "%",)).fetchall():  # fmt: skip
            conn.query(f"DROP DATABASE IF EXISTS `{name}`")
        conn.query("SET FOREIGN_KEY_CHECKS=1")
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(
        f"fault injection, DataJoint workers: {args.rounds} rounds x {args.kills} interrupted workers "
        f"({args.workers} at once), {len(harness.keys)} steps of {args.epochs} epochs each, heartbeat timeout "
        f"{args.heartbeat:g}s ({time.time() - started:.0f}s)"
    )
    for name, count in sorted(stats.items()):
        print(f"  {name}: {count}")
    print(f"  violations: {len(violations)}")
    for violation in violations:
        print(f"    {violation}")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
