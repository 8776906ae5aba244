"""Trainer overhead: nntransfer's trainer vs a hand-written PyTorch loop vs PyTorch Lightning, same work.

The work: LeNet-5 on 28x28 inputs (synthetic: content does not matter for speed), batch 128, Adam,
two epochs, each followed by a validation pass; the best state is kept and restored; then one final
validation pass. Our trainer runs with its tracker and early stopping on and progress bars off.
Runs are interleaved (A B C, B C A, ...) so that load from other users of the machine hits all alike.

    python bench/trainer_speed.py                      # CPU, one thread
    python bench/trainer_speed.py --device cuda --amp  # GPU with mixed precision: images/second

Lightning is only needed for its column (``pip install "lightning==2.6.*"``); it is not a dependency.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from nntransfer.configs.trainer.classification import ClassificationTrainerConfig
from nntransfer.trainer import classification_trainer

TASK = "img_classification"
logger = logging.getLogger("bench.trainer_speed")


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.core = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
        )
        self.readout = nn.Linear(84, 10)

    def forward(self, x):
        return self.readout(self.core(x))


def make_loaders(n_train: int, n_val: int, batch_size: int, pin: bool):
    g = torch.Generator().manual_seed(0)
    def data(n):
        return TensorDataset(torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g))
    train = DataLoader(data(n_train), batch_size=batch_size, shuffle=True, pin_memory=pin,
                       generator=torch.Generator().manual_seed(1))
    val = DataLoader(data(n_val), batch_size=batch_size, pin_memory=pin)
    return {"train": {TASK: train}, "validation": {TASK: val}}


# ---------------------------------------------------------------------- the three contestants


def run_ours(loaders, args):
    cfg = ClassificationTrainerConfig(
        max_iter=args.epochs, lr=1e-3, optimizer="Adam", show_progress=False, early_stopping=True, patience=5,
        device=args.device, amp=args.amp,
    )
    torch.manual_seed(0)
    model = LeNet5()
    score, _, _ = classification_trainer(model, loaders, seed=0, **cfg.to_dict(), **cfg.runtime_options())
    return score


def _evaluate(model, loader, device, autocast):
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    n = 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast():
                out = model(x)
                loss = F.cross_entropy(out, y)
            loss_sum += loss.float() * y.shape[0]
            correct += (out.argmax(1) == y).sum()
            n += y.shape[0]
    return (loss_sum / n).item(), (100 * correct / n).item()


def run_hand_written(loaders, args):
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = LeNet5().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    use_amp = args.amp
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    scaler = torch.amp.GradScaler("cuda") if use_amp and device.type == "cuda" else None

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=use_amp)

    train, val = loaders["train"][TASK], loaders["validation"][TASK]
    best, best_state = -1.0, None
    for _ in range(args.epochs):
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        for x, y in train:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                out = model(x)
                loss = F.cross_entropy(out, y)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            loss_sum += loss.detach().float() * y.shape[0]
            correct += (out.argmax(1) == y).sum()
        loss_sum.item()  # the epoch's logged training loss
        _, acc = _evaluate(model, val, device, autocast)
        if acc > best:
            best, best_state = acc, {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return _evaluate(model, val, device, autocast)[1]


def run_lightning(loaders, args):
    import lightning as L
    from lightning.pytorch.callbacks import EarlyStopping

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = LeNet5()

        def training_step(self, batch, _):
            x, y = batch
            out = self.model(x)
            loss = F.cross_entropy(out, y)
            self.log("train_loss", loss, on_step=False, on_epoch=True)
            self.log("train_acc", (out.argmax(1) == y).float().mean() * 100, on_step=False, on_epoch=True)
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            out = self.model(x)
            self.log("val_loss", F.cross_entropy(out, y), on_epoch=True)
            self.log("val_acc", (out.argmax(1) == y).float().mean() * 100, on_epoch=True)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    torch.manual_seed(0)
    module = Module()
    precision = ("16-mixed" if args.device == "cuda" else "bf16-mixed") if args.amp else "32-true"
    trainer = L.Trainer(
        max_epochs=args.epochs, accelerator="gpu" if args.device == "cuda" else "cpu", devices=1,
        precision=precision, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0,
        callbacks=[EarlyStopping(monitor="val_acc", mode="max", patience=5)],
    )
    train, val = loaders["train"][TASK], loaders["validation"][TASK]
    trainer.fit(module, train, val)
    return trainer.validate(module, val, verbose=False)[0]["val_acc"]


# ---------------------------------------------------------------------- measuring


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-batches", type=int, default=40)
    parser.add_argument("--val-batches", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on the CPU")
    parser.add_argument("--no-lightning", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    contestants = {"hand-written": run_hand_written, "nntransfer": run_ours}
    if not args.no_lightning:
        try:
            import lightning  # noqa: F401  (imported before silencing: it configures its loggers on import)

            contestants["lightning"] = run_lightning
        except ImportError:
            logger.info("lightning is not installed: pip install 'lightning==2.6.*' for its column")
    for noisy in ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning", "nntransfer"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
        logging.getLogger(noisy).propagate = False
    torch.set_num_threads(args.threads)

    loaders = make_loaders(args.train_batches * args.batch_size, args.val_batches * args.batch_size,
                           args.batch_size, pin=args.device == "cuda")
    images = args.batch_size * (args.epochs * args.train_batches + (args.epochs + 1) * args.val_batches)

    for run in contestants.values():  # warm-up: imports, kernels, allocator
        run(loaders, argparse.Namespace(**{**vars(args), "epochs": 1}))
    times = {name: [] for name in contestants}
    names = list(contestants)
    for r in range(args.repeats):
        order = names[r % len(names):] + names[: r % len(names)]  # interleaved, rotating order
        for name in order:
            if args.device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            contestants[name](loaders, args)
            if args.device == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)

    base = statistics.median(times["hand-written"])
    base_min = min(times["hand-written"])
    logger.info("device %s, amp %s, threads %d, %d repeats; %d images per run", args.device, args.amp,
                args.threads, args.repeats, images)
    for name, values in times.items():
        median = statistics.median(values)
        logger.info("%-13s median %.3f s (min %.3f)  %8.0f images/s  time ratio to hand-written %.3f "
                    "(of the minima %.3f)  images/s ratio %.3f", name, median, min(values), images / median,
                    median / base, min(values) / base_min, base / median)


if __name__ == "__main__":
    main()
