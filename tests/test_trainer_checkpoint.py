"""Checkpoints and resume: a job killed mid-training and restarted ends exactly like an uninterrupted one,
with a local checkpoint folder and with a table callback (an in-memory one that follows nnfabrik's
``TrainedModelChkptBase.call_back`` protocol)."""

import io

import numpy as np
import pytest
import torch
from test_trainer import TASK, TinyNet, config, digits, digits_loaders, train, values
from torch.utils.data import DataLoader

from nntransfer.configs.trainer.classification import ClassificationTrainerConfig
from nntransfer.configs.trainer.mixins import NoiseAugmentationMixin
from nntransfer.trainer import ImgClassificationTrainer, LocalCheckpoints
from nntransfer.trainer.checkpointing import get_rng_state, set_rng_state

UID = {"model_hash": "m", "dataset_hash": "d", "trainer_hash": "t", "seed": 1}


class Killed(Exception):
    pass


class KillingLoader:
    """Wraps a DataLoader; raises ``Killed`` when the ``kill_at``-th batch (counted over epochs) is due,
    like a job killed in the middle of an epoch."""

    def __init__(self, loader, kill_at=None):
        self.loader, self.kill_at, self.served = loader, kill_at, 0

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            if self.kill_at is not None and self.served == self.kill_at:
                raise Killed()
            self.served += 1
            yield batch


class MemoryCheckpoints:
    """The checkpoint table's ``call_back`` (nnfabrik/templates/checkpoint.py) with a dict as table: same
    keys popped, same filtering, ``torch.save``/``torch.load`` of the state, ``"net"`` = model state dict."""

    def __init__(self):
        self.rows = {}  # (uid key, epoch) -> {"score", "state" (bytes)}

    def __call__(self, uid=None, epoch=None, model=None, state=None):
        maximize_score = state.pop("maximize_score", True)
        action = state.pop("action", "save")
        if action == "save":
            self.save_epoch(epoch, maximize_score, model, state, uid)
        else:
            self.restore_epoch(action, uid, maximize_score, state)

    def _key(self, uid):
        return tuple(sorted(uid.items()))

    def _mine(self, uid):
        return {e: row for (k, e), row in self.rows.items() if k == self._key(uid)}

    def restore_epoch(self, action, uid, maximize_score, state):
        checkpoints = self._mine(uid)
        if not checkpoints:
            return
        if action == "last":
            epoch = sorted(checkpoints)[-1]
        else:
            epoch = sorted(checkpoints, key=lambda e: checkpoints[e]["score"], reverse=maximize_score)[0]
        state["epoch"], state["score"] = epoch, checkpoints[epoch]["score"]
        loaded_state = torch.load(io.BytesIO(checkpoints[epoch]["state"]))
        for key, state_entry in loaded_state.items():
            if key in state and hasattr(state[key], "load_state_dict"):
                state[key].load_state_dict(state_entry)
            else:
                state[key] = state_entry

    def save_epoch(self, epoch, maximize_score, model, state, uid):
        if epoch % state.pop("save_every_n", 1) != 0:
            return
        score = state.pop("score", 0.0)
        keep_best_n = state.pop("keep_best_n", 1)
        keep_last_n = state.pop("keep_last_n", 1)
        keep_selection = state.pop("keep_selection", ())
        state["net"] = model.state_dict()
        buffer = io.BytesIO()
        torch.save(state, buffer)
        self.rows[(self._key(uid), epoch)] = {"score": score, "state": buffer.getvalue()}
        checkpoints = self._mine(uid)
        keep = set(sorted(checkpoints, key=lambda e: checkpoints[e]["score"], reverse=maximize_score)[:keep_best_n])
        keep |= set(sorted(checkpoints, reverse=True)[:keep_last_n])
        keep |= {e for e in checkpoints if e in keep_selection}
        for e in set(checkpoints) - keep:
            del self.rows[(self._key(uid), e)]


def loaders_for(kill_at=None, own_generator=False):
    generator = torch.Generator().manual_seed(7) if own_generator else None
    loaders = digits_loaders(generator=generator)
    loaders["train"][TASK] = KillingLoader(loaders["train"][TASK], kill_at)
    return loaders


class NoisyConfig(NoiseAugmentationMixin, ClassificationTrainerConfig):
    pass


def resumable_config(**kwargs):
    # noise (global RNG) and dropout (global RNG) make the RNG state matter; lr decay makes the counters matter
    # this run: best at epoch 3, no gain at 4 -> restore epoch 3 and decay, no gain at 5 -> stop
    defaults = dict(max_iter=8, lr=0.1, show_progress=False, noise_std={0.2: 0.5}, patience=1, lr_decay_steps=1,
                    tolerance=1.0, scheduler="multistep", scheduler_options={"milestones": [3]}, lr_warmup=1)
    defaults.update(kwargs)
    return NoisyConfig(**defaults)


def assert_same_run(a, b):
    (score_a, out_a, state_a), (score_b, out_b, state_b) = a, b
    assert score_a == score_b
    assert out_a["final"] == out_b["final"]
    assert out_a["tracker"]["log"] == out_b["tracker"]["log"]
    assert (out_a["epochs"], out_a["best_epoch"]) == (out_b["epochs"], out_b["best_epoch"])
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


@pytest.mark.parametrize("own_generator", [False, True])
def test_killed_job_resumes_from_the_local_folder_and_ends_identically(tmp_path, own_generator):
    cfg = resumable_config(checkpoint_dir=str(tmp_path))
    uninterrupted = train(cfg, loaders=loaders_for(own_generator=own_generator), uid={**UID, "run": "a"})
    assert not any(tmp_path.rglob("*.pt"))  # cleared after success (keep_checkpoints=False)

    last = uninterrupted[1]["epochs"]
    assert uninterrupted[1]["best_epoch"] < last < cfg.max_iter  # early-stopping state matters after the kill
    with pytest.raises(Killed):  # killed in the middle of the last epoch (4 batches per epoch)
        train(cfg, loaders=loaders_for(kill_at=4 * (last - 1) + 2, own_generator=own_generator), uid=UID)
    store = LocalCheckpoints(tmp_path)
    assert max(store.checkpoints(UID)) == last - 1
    resumed = train(cfg, loaders=loaders_for(own_generator=own_generator), uid=UID)
    assert_same_run(uninterrupted, resumed)


def test_killed_job_resumes_through_the_table_callback():
    cfg = resumable_config()
    cb = MemoryCheckpoints()
    uninterrupted = train(cfg, loaders=loaders_for(), uid={**UID, "run": "a"}, cb=cb)
    with pytest.raises(Killed):
        train(cfg, loaders=loaders_for(kill_at=10), uid=UID, cb=cb)  # in epoch 3
    assert max(e for (k, e) in cb.rows if dict(k) == UID) == 2
    last = uninterrupted[1]["epochs"]
    with pytest.raises(Killed):  # killed again, now in the last epoch, after the lr decay
        train(cfg, loaders=loaders_for(kill_at=4 * (last - 3) + 2), uid=UID, cb=cb)
    assert max(e for (k, e) in cb.rows if dict(k) == UID) == last - 1
    resumed = train(cfg, loaders=loaders_for(), uid=UID, cb=cb)
    assert_same_run(uninterrupted, resumed)


def test_resume_restores_every_piece_of_state(tmp_path):
    cfg = resumable_config(checkpoint_dir=str(tmp_path), keep_checkpoints=True, max_iter=3)
    score, output, _ = train(cfg, loaders=loaders_for(), uid=UID)
    assert sorted(LocalCheckpoints(tmp_path).checkpoints(UID)) == [3]  # kept; keep_last_n = keep_best_n = 1
    from nntransfer.trainer import trainer_config_from_dict

    trainer = ImgClassificationTrainer(TinyNet(seed=5), loaders_for(), 1, trainer_config_from_dict(values(cfg)), uid=UID)
    assert trainer.resume()
    assert trainer.epoch == 3 and trainer.global_step == 12
    assert trainer.tracker.log == output["tracker"]["log"]
    assert trainer.early_stopping.best_epoch == output["best_epoch"]
    assert trainer.scheduler.last_epoch == 2  # stepped after epochs 2 and 3 (epoch 1 was warm-up)
    assert trainer.optimizer.state_dict()["state"]  # Adam moments are back
    fresh = ImgClassificationTrainer(TinyNet(seed=5), loaders_for(), 1, trainer_config_from_dict(values(cfg)),
                                     uid={**UID, "seed": 2})
    assert not fresh.resume()


def test_local_checkpoints_keep_best_last_and_selected_epochs(tmp_path):
    store = LocalCheckpoints(tmp_path)
    model = TinyNet()
    scores = {1: 50.0, 2: 90.0, 3: 60.0, 4: 70.0, 5: 40.0, 6: 30.0}
    options = {"save_every_n": 1, "keep_best_n": 1, "keep_last_n": 2, "keep_selection": (3,)}
    for epoch, score in scores.items():
        store(uid=UID, epoch=epoch, model=model, state={"action": "save", "score": score, "maximize_score": True, **options})
    assert sorted(store.checkpoints(UID)) == [2, 3, 5, 6]
    state = {"action": "best", "maximize_score": True, "net": TinyNet(seed=3)}
    store(uid=UID, model=model, state=state)
    assert state["epoch"] == 2 and state["score"] == 90.0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state["net"].state_dict().items())
    state = {"action": "last", "maximize_score": True}
    store(uid=UID, model=model, state=state)
    assert state["epoch"] == 6
    store(uid=UID, epoch=7, model=model, state={"action": "save", "score": 1.0, "save_every_n": 2})
    assert 7 not in store.checkpoints(UID)
    with pytest.raises(ValueError, match="unknown checkpoint action"):
        store(uid=UID, model=model, state={"action": "load"})


def test_save_every_n_epochs_with_the_trainer(tmp_path):
    cfg = config(max_iter=4, checkpoint_dir=str(tmp_path), keep_checkpoints=True, early_stopping=False,
                 chkpt_options={"save_every_n": 2, "keep_best_n": 0, "keep_last_n": 5, "keep_selection": ()})
    train(cfg, uid=UID)
    assert sorted(LocalCheckpoints(tmp_path).checkpoints(UID)) == [2, 4]


def test_rng_state_round_trip_covers_python_numpy_torch_and_generators():
    import random

    generator = torch.Generator().manual_seed(3)
    state = get_rng_state({"g": generator})
    first = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=generator).item())
    set_rng_state(state, {"g": generator})
    assert (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=generator).item()) == first


def test_loader_with_dataset_generator_shuffles_identically_after_resume(tmp_path):
    # the dataset loader of this package shuffles with its own seeded generator: covered by the RNG state
    loader = DataLoader(digits(0, 256), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(1))
    from nntransfer.trainer.checkpointing import loader_generators

    generators = loader_generators({TASK: loader})
    assert len(generators) == 1
    state = get_rng_state(generators)
    order = [y.tolist() for _, y in loader]
    set_rng_state(state, generators)
    assert [y.tolist() for _, y in loader] == order


# ---------------------------------------------------------------------- damaged checkpoints (issue 11, item 6)


def saved_epochs(folder, epochs=(1, 2, 3), keep_last_n=3):
    """A checkpoint folder with ``epochs`` saved (scores rising with the epoch); returns the store and model."""
    store = LocalCheckpoints(folder)
    model = TinyNet()
    for epoch in epochs:
        state = {"action": "save", "score": float(epoch), "maximize_score": True, "keep_last_n": keep_last_n,
                 "keep_best_n": 1, "marker": epoch}
        store(uid=UID, epoch=epoch, model=model, state=state)
    return store, model


def truncate(path):
    path.write_bytes(path.read_bytes()[:100])


DAMAGES = {
    "truncated checkpoint": (lambda pt: truncate(pt), "epoch_000003.pt"),
    "garbage checkpoint": (lambda pt: pt.write_bytes(b"\x00garbage" * 50), "epoch_000003.pt"),
    "garbage score": (lambda pt: pt.with_suffix(".score").write_text("0.9\x00\x01not a number"), "epoch_000003.score"),
    "nan score": (lambda pt: pt.with_suffix(".score").write_text("nan"), "epoch_000003.score"),
    "checkpoint without score": (lambda pt: pt.with_suffix(".score").unlink(), "epoch_000003.score"),
    "score without checkpoint": (lambda pt: pt.unlink(), None),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_checkpoint_falls_back_to_an_earlier_one_with_a_warning(tmp_path, caplog, damage):
    """Defect: one damaged checkpoint blocked its job forever (torch.load or float() raised on every try)."""
    store, model = saved_epochs(tmp_path)
    spoil, named = DAMAGES[damage]
    spoil(store.checkpoints(UID)[3])
    for action in ("last", "best"):  # best: epoch 3 had the best score
        state = {"action": action, "maximize_score": True, "net": TinyNet(seed=4)}
        store(uid=UID, model=model, state=state)
        assert state["epoch"] == 2 and state["marker"] == 2
    if named:  # the first restore names the damaged file (and deletes it: it can never be restored)
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(warnings) == 1 and named in warnings[0] and "skipping" in warnings[0], warnings
    # choosing what to keep does not trip over it either, and drops what can never be restored
    store(uid=UID, epoch=4, model=model, state={"action": "save", "score": 4.0, "keep_last_n": 3, "keep_best_n": 1})
    assert sorted(p.name for p in store.run_folder(UID).iterdir()) == [
        f"epoch_00000{e}.{kind}" for e in (1, 2, 4) for kind in ("pt", "score")]  # fmt: skip


def test_no_usable_checkpoint_starts_the_job_over_with_a_warning(tmp_path, caplog):
    store, model = saved_epochs(tmp_path, epochs=(1, 2), keep_last_n=2)
    for path in store.checkpoints(UID).values():
        truncate(path)
    (store.run_folder(UID) / "epoch_xx.pt").write_bytes(b"not an epoch")  # a stray name is no checkpoint
    (store.run_folder(UID) / ".epoch_000003.pt.abc.tmp").write_bytes(b"half")  # a kill while saving
    state = {"action": "last", "maximize_score": True, "net": TinyNet(seed=4)}
    store(uid=UID, model=model, state=state)
    assert "epoch" not in state  # nothing restored: the trainer starts from epoch 1
    assert "starts over" in caplog.text and "epoch_000001.pt" in caplog.text and "epoch_000002.pt" in caplog.text
    assert not list(store.run_folder(UID).glob("*.tmp"))


def test_a_killed_job_whose_last_checkpoint_is_damaged_still_ends_identically(tmp_path, caplog):
    """The trainer resumes from the checkpoint before the damaged one and ends exactly like an
    uninterrupted run."""
    import logging

    caplog.set_level(logging.INFO, logger="nntransfer")
    options = {"save_every_n": 1, "keep_best_n": 1, "keep_last_n": 2, "keep_selection": ()}
    cfg = resumable_config(checkpoint_dir=str(tmp_path), chkpt_options=options)
    uninterrupted = train(cfg, loaders=loaders_for(), uid={**UID, "run": "a"})
    last = uninterrupted[1]["epochs"]
    with pytest.raises(Killed):
        train(cfg, loaders=loaders_for(kill_at=4 * (last - 1) + 2), uid=UID)
    store = LocalCheckpoints(tmp_path)
    assert {last - 2, last - 1} <= set(store.checkpoints(UID))
    truncate(store.checkpoints(UID)[last - 1])
    resumed = train(cfg, loaders=loaders_for(), uid=UID)
    assert f"epoch_{last - 1:06d}.pt: it cannot be read" in caplog.text
    assert f"resumed from the checkpoint of epoch {last - 2}" in caplog.text
    assert_same_run(uninterrupted, resumed)


def test_a_full_disk_while_checkpointing_is_one_line_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import errno
    import os

    from nntransfer.errors import StorageError

    store, model = saved_epochs(tmp_path, epochs=(1,))
    real_replace = os.replace

    def full_disk(src, dst, *args, **kwargs):
        if str(dst).endswith(".pt"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(StorageError) as raised:
        store(uid=UID, epoch=2, model=model, state={"action": "save", "score": 2.0})
    message = str(raised.value)
    assert "\n" not in message and "epoch_000002.pt" in message and "No space left on device" in message
    monkeypatch.undo()
    assert not list(store.run_folder(UID).glob("*.tmp"))
    state = {"action": "last", "maximize_score": True, "net": TinyNet(seed=4)}
    store(uid=UID, model=model, state=state)  # the score written before the failure is ignored
    assert state["epoch"] == 1


def test_a_watcher_sees_each_validated_epoch_and_a_pruned_step_resumes_from_that_epochs_checkpoint(tmp_path):
    from nntransfer.errors import StepPruned
    from nntransfer.trainer.observers import watching_validation

    cfg = resumable_config(checkpoint_dir=str(tmp_path), interval=2, max_iter=5, early_stopping=False)
    seen = []

    def prune_at_4(uid, epoch, results):
        seen.append((dict(uid), epoch, results[TASK]["accuracy"]))
        if epoch == 4:
            raise StepPruned("pruned at epoch 4")

    uninterrupted = train(cfg, loaders=loaders_for(), uid={**UID, "run": "a"})
    with watching_validation(prune_at_4), pytest.raises(StepPruned):
        train(cfg, loaders=loaders_for(), uid=UID)
    log = uninterrupted[1]["tracker"]["log"]["Validation"][TASK]
    per_example = [total / max(n, 1.0) for total, n in zip(log["accuracy"], log["normalization"])]
    assert seen == [(UID, 2, per_example[2]), (UID, 4, per_example[4])]  # validated epochs only (interval 2), as tracked
    assert max(LocalCheckpoints(tmp_path).checkpoints(UID)) == 4  # the pruned epoch was checkpointed first
    resumed = train(cfg, loaders=loaders_for(), uid=UID)  # nobody watches now: it trains on from epoch 5
    assert_same_run(uninterrupted, resumed)
    assert len(seen) == 2
