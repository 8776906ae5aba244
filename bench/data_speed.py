"""Data path speed: one whole nntransfer step (``run_step``: data from files, model, training, final
evaluation) against a hand-written loop doing the same work on in-memory tensors.

Two cases, each on files in the real on-disk formats (synthetic content):

- ``mnist``: MNIST idx files, 4,000 training images (+444 validation), 1,000 test images, LeNet-5,
  batch 128, Adam, three epochs each followed by validation, best state restored, final evaluation of
  validation and test. Target: nntransfer <= 1.15x the hand-written loop's time (CPU, one thread).
- ``cifar``: CIFAR-10 python batches (5,000 training images by default), random crop (padding 4) and
  horizontal flip on every training batch, same schedule. Target: <= 1.2x (CPU); on CUDA with the data
  resident on the GPU, >= 0.9x the hand-written loop's images per second.

The hand-written loop reads the same files with numpy, keeps the images as tensors (on the device),
slices shuffled batches and (cifar) augments whole batches; it builds the same model
(``nntransfer.models.build_model``) with the same seed. Runs alternate (A B, B A, ...) so that other load
on the machine hits both alike; the script prints medians, minima and ratios.

    python bench/data_speed.py                                   # both cases, CPU, one thread
    python bench/data_speed.py --case cifar --device cuda --train-per-batch 10000 --model resnet18
"""

from __future__ import annotations

import argparse
import logging
import pickle
import statistics
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nntransfer.configs import ClassificationModelConfig, ClassificationTrainerConfig, ImageDatasetConfig
from nntransfer.models import build_model
from nntransfer.pipeline.step import StepSpec, run_step

logger = logging.getLogger("bench.data_speed")

MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


# ---------------------------------------------------------------------- files


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    ndim = raw[3]
    shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def write_mnist(root: Path, n_train: int, n_test: int) -> None:
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(raw / "train-labels-idx1-ubyte", rng.integers(0, 10, n_train))
    write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte", rng.integers(0, 10, n_test))


CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def write_cifar(root: Path, per_batch: int, n_test: int) -> None:
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, n in [(name, per_batch) for name in CIFAR_TRAIN] + [("test_batch", n_test)]:
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist()}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)


def read_mnist(root: Path):
    raw = root / "MNIST" / "raw"
    x = torch.from_numpy(read_idx(raw / "train-images-idx3-ubyte").copy())[:, None]
    y = torch.from_numpy(read_idx(raw / "train-labels-idx1-ubyte").astype(np.int64))
    xt = torch.from_numpy(read_idx(raw / "t10k-images-idx3-ubyte").copy())[:, None]
    yt = torch.from_numpy(read_idx(raw / "t10k-labels-idx1-ubyte").astype(np.int64))
    return x, y, xt, yt


def read_cifar(root: Path):
    def read(names):
        xs, ys = [], []
        for name in names:
            with open(root / "cifar-10-batches-py" / name, "rb") as f:
                entry = pickle.load(f, encoding="latin1")
            xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys.extend(entry["labels"])
        return torch.from_numpy(np.concatenate(xs)), torch.tensor(ys, dtype=torch.int64)

    return (*read(CIFAR_TRAIN), *read(["test_batch"]))


# ---------------------------------------------------------------------- the two contestants


def configs(args, data_dir: Path):
    cifar = args.case == "cifar"
    dataset = ImageDatasetConfig(
        dataset_cls="CIFAR10" if cifar else "MNIST", input_size=32 if cifar else 28, batch_size=args.batch_size,
        valid_size=args.valid_size, augment_crop=cifar, crop_padding=4, augment_flip=cifar, data_dir=str(data_dir),
    )
    model = ClassificationModelConfig(type=args.model)
    trainer = ClassificationTrainerConfig(max_iter=args.epochs, lr=1e-3, optimizer="Adam", show_progress=False,
                                          device=args.device, amp=args.amp)
    return dataset, model, trainer


def run_ours(args, data_dir: Path) -> float:
    dataset, model, trainer = configs(args, data_dir)
    spec = StepSpec(dataset.fn, dataset.to_dict(), model.fn, model.to_dict(), trainer.fn, trainer.to_dict(), seed=0,
                    runtime={"dataset": dataset.runtime_options(), "trainer": trainer.runtime_options()})
    return run_step(spec).score


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop (padding 4) and horizontal flip of a float batch, written out by hand."""
    b, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4))
    offsets = torch.randint(0, 9, (b, 2), generator=generator).to(x.device)
    rows = offsets[:, 0, None] + torch.arange(h, device=x.device)
    cols = offsets[:, 1, None] + torch.arange(w, device=x.device)
    x = padded.permute(0, 2, 3, 1)[torch.arange(b, device=x.device)[:, None, None], rows[:, :, None], cols[:, None, :]]
    x = x.permute(0, 3, 1, 2)
    flip = (torch.rand(b, generator=generator) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(flip, x.flip(3), x)


def run_hand_written(args, data_dir: Path) -> float:
    device = torch.device(args.device)
    cifar = args.case == "cifar"
    x, y, xt, yt = read_cifar(data_dir) if cifar else read_mnist(data_dir)
    mean, std = (CIFAR_MEAN, CIFAR_STD) if cifar else (MNIST_MEAN, MNIST_STD)
    mean_t = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, -1, 1, 1)
    order = torch.from_numpy(np.random.default_rng(0).permutation(len(y)))
    n_valid = int(args.valid_size * len(y))
    train_idx, valid_idx = order[n_valid:].sort().values, order[:n_valid].sort().values
    x, y, xt, yt = x.to(device), y.to(device), xt.to(device), yt.to(device)
    xv, yv, x, y = x[valid_idx.to(device)], y[valid_idx.to(device)], x[train_idx.to(device)], y[train_idx.to(device)]
    _, model_config, _ = configs(args, data_dir)
    model = build_model(model_config, tuple(x.shape[1:]), 10, seed=0).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16

    def prepare(batch, train):
        batch = batch.float() / 255
        if train and cifar:
            batch = augment(batch, generator)
        return (batch - mean_t) / std_t

    def evaluate(inputs, targets):
        model.eval()
        correct = torch.zeros((), device=device)
        loss_sum = torch.zeros((), device=device)
        with torch.no_grad():
            for start in range(0, len(targets), args.batch_size):
                batch, labels = prepare(inputs[start:start + args.batch_size], False), targets[start:start + args.batch_size]
                with torch.autocast(device.type, dtype=dtype, enabled=args.amp):
                    out = model(batch)
                    loss_sum += F.cross_entropy(out, labels).float() * len(labels)
                correct += (out.argmax(1) == labels).sum()
        return (100 * correct / len(targets)).item()

    best, best_state = -1.0, None
    for _ in range(args.epochs):
        model.train()
        perm = torch.randperm(len(y), generator=generator).to(device)
        for start in range(0, len(y), args.batch_size):
            rows = perm[start:start + args.batch_size]
            batch, labels = prepare(x[rows], True), y[rows]
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=dtype, enabled=args.amp):
                loss = F.cross_entropy(model(batch), labels)
            loss.backward()
            optimizer.step()
        accuracy = evaluate(xv, yv)
        if accuracy > best:
            best, best_state = accuracy, {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    evaluate(xt, yt)
    return evaluate(xv, yv)


# ---------------------------------------------------------------------- measuring


def measure(args) -> dict:
    contestants = {"hand-written": run_hand_written, "nntransfer": run_ours}
    times = {name: [] for name in contestants}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        if args.case == "mnist":
            write_mnist(data_dir, args.n_train, args.n_test)
        else:
            write_cifar(data_dir, args.train_per_batch, args.n_test)
        names = list(contestants)
        for name in names:  # warm-up: imports, allocator, caches
            contestants[name](args, data_dir)
        for repeat in range(args.repeats):
            for name in names[repeat % 2:] + names[:repeat % 2]:
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                start = time.perf_counter()
                contestants[name](args, data_dir)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                times[name].append(time.perf_counter() - start)
    n_train = int((args.n_train if args.case == "mnist" else 5 * args.train_per_batch) * (1 - args.valid_size))
    n_valid = int((args.n_train if args.case == "mnist" else 5 * args.train_per_batch) * args.valid_size)
    images = args.epochs * (n_train + n_valid) + 2 * n_valid + args.n_test  # trained + evaluated
    return {name: {"median": statistics.median(t), "min": min(t), "images_per_s": images / statistics.median(t)}
            for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", choices=["mnist", "cifar", "both"], default="both")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--valid-size", type=float, default=0.1)
    parser.add_argument("--n-train", type=int, default=4444, help="mnist: training + validation images")
    parser.add_argument("--train-per-batch", type=int, default=1000, help="cifar: images per training batch file (5 files)")
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("nntransfer").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    bounds = {"mnist": 1.15, "cifar": 1.2}
    for case in (["mnist", "cifar"] if args.case == "both" else [args.case]):
        args.case = case
        results = measure(args)
        hand, ours = results["hand-written"], results["nntransfer"]
        ratio = ours["median"] / hand["median"]
        logger.info("%s on %s (%d threads, %d repeats, model %s):", case, args.device, args.threads, args.repeats, args.model)
        for name, r in results.items():
            logger.info("  %-13s median %.3f s  min %.3f s  %8.0f images/s", name, r["median"], r["min"], r["images_per_s"])
        logger.info("  ratio nntransfer / hand-written: time %.3fx (target <= %.2fx), images/s %.3fx",
                    ratio, bounds[case], hand["median"] / ours["median"])


if __name__ == "__main__":
    main()
