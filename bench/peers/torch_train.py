"""PyTorch peer of `npm run train`, for `npm run bench:peers`.

Trains the same network on the same Fashion-MNIST files with the same recipe as the project's
trainer: Keras's initialisation (Glorot-uniform kernels, zero biases), Adam with Keras's epsilon,
the learning rate decayed per step by a cosine to 0 (or constant), softmax cross-entropy, a fresh
shuffle every epoch, and with --augment the project's flips and shifts, drawn from its hash. Each epoch is one pass of training plus evaluating the 10,000 test images,
timed together, as the project's `metrics.json` times its epochs. Prints one JSON line per epoch:
{"epoch", "seconds", "loss", "accuracy", "testLoss", "testAccuracy"}; what ran (torch, BLAS,
threads) goes to stderr.

It is a peer, written the way a PyTorch user would: tensors held in memory and indexed per batch
(a DataLoader over single samples would time Python, not PyTorch), no torch.compile.

Run it with Debian's python3-torch and OpenBLAS as the system BLAS, one OpenBLAS thread:
    apt-get install -y python3-torch libopenblas0-pthread
    /usr/bin/python3 bench/peers/torch_train.py --model-py model.py --batch-size 128
where model.py is the export's module for the layer list (bench:peers writes it).
"""

import argparse
import gzip
import hashlib
import importlib.util
import json
import math
import os
import sys
import time

# OpenBLAS reads this when it is loaded, i.e. when torch is imported. torch runs its own threads
# (set_num_threads) around the BLAS calls; OpenBLAS threads on top of them oversubscribe 2 cores
# (measured: batch 32 took 8.8 s per epoch with both, 3.8 s with one OpenBLAS thread).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402  (after the environment above, on purpose)
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

# The places the project's loader looks, in its order (src/data/fashion-mnist.ts). It downloads
# when none has the files; this script does not, and says so.
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
LOCAL_DIR = os.path.join("data", "fashion-mnist")
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
HEIGHT, WIDTH = 28, 28


class UserError(Exception):
    """A bad flag, spec or data file: printed as one line, exit code 1."""


# ---------------------------------------------------------------------------------------------
# Data


def find_data(explicit):
    if explicit is not None:
        candidates = [explicit]
    elif os.environ.get("FASHION_MNIST_DIR"):
        candidates = [os.environ["FASHION_MNIST_DIR"]]
    else:
        candidates = [LOCAL_DIR, DEBIAN_DIR]
    for directory in candidates:
        if all(file_in(directory, name) for name in FILES):
            return directory
    raise UserError(
        f"Fashion-MNIST is not in {' or '.join(candidates)}: apt-get install dataset-fashion-mnist, "
        "or run `npm run train` once (it downloads into ./data/fashion-mnist), or pass --data DIR"
    )


def file_in(directory, name):
    for candidate in (name + ".gz", name):
        path = os.path.join(directory, candidate)
        if os.path.exists(path):
            return path
    return None


def read_idx(path, rank):
    """The IDX file of unsigned bytes at `path` (gzipped or not) as a uint8 tensor of `rank` dimensions."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic != 0x0800 + rank:
        raise UserError(f"{path}: wrong IDX magic number {magic:#010x}, expected {0x0800 + rank:#010x}")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    body = 4 + 4 * rank
    if len(data) - body != math.prod(dims):
        raise UserError(f"{path}: {len(data) - body} bytes of data for dimensions {dims}")
    return torch.frombuffer(bytearray(data[body:]), dtype=torch.uint8).reshape(dims)


def load_split(directory, images_file, labels_file):
    """Images as float32 [N, 1, 28, 28] scaled to [0, 1], as the project scales them; labels int64."""
    images = read_idx(file_in(directory, images_file), 3)
    labels = read_idx(file_in(directory, labels_file), 1)
    if tuple(images.shape[1:]) != (HEIGHT, WIDTH) or labels.shape[0] != images.shape[0]:
        raise UserError(f"{directory}: not Fashion-MNIST (images {list(images.shape)}, labels {list(labels.shape)})")
    return images.unsqueeze(1).float().div_(255), labels.long()


def data_sha256(*splits):
    """SHA-256 of the grey levels (back from [0, 1]) and labels of (images, labels) splits, as the
    project's `npm run train` writes it in metrics.json: bench:peers checks that both sides read the
    same data."""
    digest = hashlib.sha256()
    for images, labels in splits:
        digest.update(images.mul(255).round().to(torch.uint8).numpy().tobytes())
        digest.update(labels.to(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# The network: the export's model.py, so that the translation of the layer grammar lives in one place


def build_network(path):
    """The network of `path`, a model.py written by the project's export for a layer list (see
    src/export/pytorch.ts: bench:peers writes one for --layers), freshly initialised as Keras
    initialises it: Glorot-uniform kernels, zero biases. Glorot's fans for a conv kernel
    [out, in, k, k] are in*k*k and out*k*k in both frameworks.

    Its input is one grey image NCHW; it returns the logits, and the loss applies the softmax,
    which is the same function as Keras's softmax followed by sparse categorical cross-entropy.
    Its Flatten orders features NHWC as Keras does, and its Dropout, given no context, is
    nn.Dropout's."""
    module = load_model_py(path)
    network = module.build()
    for layer in network.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return network


def load_model_py(path):
    if not os.path.isfile(path):
        raise UserError(f"--model-py {path}: no such file; bench:peers writes it with the export's modelPy")
    spec = importlib.util.spec_from_file_location("exported_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# What runs underneath


def blas():
    """The BLAS that torch calls, as {"name", "library"}.

    Debian's torch is built against the generic BLAS interface, so torch.__config__.show() says
    BLAS_INFO=generic whichever library the system's libblas.so.3 is. On Linux the library
    actually loaded is read from /proc/self/maps; elsewhere (or for a wheel with MKL linked in)
    the build setting is all there is.
    """
    loaded = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                base = os.path.basename(path).lower()
                if path.startswith("/") and path not in loaded and any(m in base for m in ("blas", "mkl", "blis")):
                    loaded.append(path)
    except OSError:
        pass
    for path in loaded:
        for marker, name in (("openblas", "OpenBLAS"), ("mkl", "MKL"), ("blis", "BLIS"), ("atlas", "ATLAS")):
            if marker in path.lower():
                return {"name": name, "library": path}
    # Debian's reference BLAS is /usr/lib/<triplet>/blas/libblas.so.3.
    reference = [path for path in loaded if os.path.basename(path).startswith("libblas.so")]
    if reference:
        return {"name": "reference", "library": reference[0]}
    settings = torch.__config__.show().replace(",", " ").split()
    built = next((s.split("=", 1)[1] for s in settings if s.startswith("BLAS_INFO=")), "?")
    return {"name": {"mkl": "MKL", "open": "OpenBLAS"}.get(built, f"unknown (BLAS_INFO={built})"), "library": None}


def describe(path, threads):
    network = build_network(path)
    return {
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "torch": torch.__version__,
        "blas": blas(),
        "threads": threads,
        "openblasThreads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "layers": load_model_py(path).LAYERS,
        "parameters": sum(p.numel() for p in network.parameters()),
    }


def warn_about(info):
    """Loud warnings for what makes the comparison unfair to PyTorch; True when there were none."""
    ok = True
    if info["blas"]["name"] == "reference":
        print(
            f"WARNING: torch is running on the reference BLAS ({info['blas']['library']}), several times slower "
            "than an optimised one: apt-get install -y libopenblas0-pthread",
            file=sys.stderr,
        )
        ok = False
    if info["openblasThreads"] != "1" and info["blas"]["name"] == "OpenBLAS":
        print(
            f"WARNING: OPENBLAS_NUM_THREADS={info['openblasThreads']}: OpenBLAS threads on top of torch's "
            "oversubscribe the cores; set it to 1",
            file=sys.stderr,
        )
        ok = False
    return ok


# ---------------------------------------------------------------------------------------------
# Training


def parse_augment(text):
    """--augment as the project's (src/data/augment.ts): flip, shift:N, or both, e.g. flip,shift:2."""
    augment, seen = {"flip": False, "shift": 0}, set()
    for item in text.split(","):
        name, _, value = item.strip().partition(":")
        if name in seen:
            raise argparse.ArgumentTypeError(f'"{name}" is given twice in "{text}"')
        seen.add(name)
        if name == "flip" and not value:
            augment["flip"] = True
        elif name == "shift" and value.isdigit() and 1 <= int(value) <= (min(HEIGHT, WIDTH) + 1) // 2 - 1:
            augment["shift"] = int(value)
        else:
            raise argparse.ArgumentTypeError(f'expected flip, shift:N (N from 1 to 13), or both, got "{item.strip()}"')
    return augment


def augmented(images, samples, transforms, seed, epoch, augment):
    """images[samples] (NCHW) flipped and shifted as the project's gather does it, from the same
    hash of the seed, the epoch (0-based) and the image (model.py's augment_transforms): pixel
    (y, x) is pixel (y - dy, x - dx) of the image flipped when drawn so, 0 outside it."""
    flips, dx, dy = transforms(seed, epoch, samples, augment["flip"], augment["shift"])
    batch = images[samples]
    n, _, height, width = batch.shape
    rows = torch.arange(height)[None, :] - dy[:, None]
    columns = torch.arange(width)[None, :] - dx[:, None]
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((columns >= 0) & (columns < width))[:, None, :]
    columns = torch.where(flips[:, None], width - 1 - columns, columns)
    # Advanced indices around a slice put their dimensions first: [n, H, W, C].
    picked = batch[
        torch.arange(n)[:, None, None], :, rows.clamp(0, height - 1)[:, :, None], columns.clamp(0, width - 1)[:, None, :]
    ]
    return picked.permute(0, 3, 1, 2) * inside[:, None].to(picked.dtype)


def learning_rate(schedule, base, step, total):
    """The project's schedule (src/optimizer/schedule.ts), per 0-based step."""
    return base if schedule == "constant" else base * (1 + math.cos(math.pi * step / total)) / 2


def evaluate(network, images, labels, chunk=1000):
    """Mean loss and accuracy over a split, in chunks (a CNN's activations for 10,000 images at once
    would take gigabytes)."""
    network.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(labels), chunk):
            logits = network(images[start : start + chunk])
            target = labels[start : start + chunk]
            loss_sum += F.cross_entropy(logits, target, reduction="sum").item()
            correct += (logits.argmax(1) == target).sum().item()
    return loss_sum / len(labels), correct / len(labels)


def train(args):
    torch.manual_seed(args.seed)
    network = build_network(args.model_py)
    transforms = load_model_py(args.model_py).augment_transforms if args.augment else None
    data = find_data(args.data)
    x_train, y_train = load_split(data, FILES[0], FILES[1])
    x_test, y_test = load_split(data, FILES[2], FILES[3])
    print(f"data: sha256 {data_sha256((x_train, y_train), (x_test, y_test))}", file=sys.stderr, flush=True)
    # Keras's Adam adds epsilon to sqrt(v) and folds the bias corrections into the rate; PyTorch's
    # adds it to sqrt(v / (1 - beta2^t)). The two differ by a factor sqrt(1 - beta2^t) on epsilon
    # alone, which matters only while that is far from 1 (the first few hundred steps) and then
    # only when v is as small as epsilon.
    optimizer = torch.optim.Adam(network.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-7)
    shuffles = torch.Generator().manual_seed(args.seed)
    count = len(y_train)
    steps = math.ceil(count / args.batch_size)  # the last batch is partial, as in the project
    total = steps * args.epochs
    for epoch in range(1, args.epochs + 1):
        started = time.perf_counter()
        network.train()
        order = torch.randperm(count, generator=shuffles)
        loss_sum, correct = 0.0, 0
        for step in range(steps):
            batch = order[step * args.batch_size : (step + 1) * args.batch_size]
            labels = y_train[batch]
            if transforms is None:
                images = x_train[batch]
            else:
                images = augmented(x_train, batch, transforms, args.seed, epoch - 1, args.augment)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(args.lr_schedule, args.lr, (epoch - 1) * steps + step, total)
            logits = network(images)
            loss = F.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            # Keras-style training metrics: each batch as it was before its update.
            loss_sum += loss.item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
        test_loss, test_accuracy = evaluate(network, x_test, y_test)
        seconds = time.perf_counter() - started
        line = {
            "epoch": epoch,
            "seconds": seconds,
            "loss": loss_sum / count,
            "accuracy": correct / count,
            "testLoss": test_loss,
            "testAccuracy": test_accuracy,
        }
        print(json.dumps(line), flush=True)


def positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f'must be an integer >= 1, got "{text}"')
    return int(text)


def base_rate(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 1e6:
        raise argparse.ArgumentTypeError(f'must be a number greater than 0 and at most 1000000, got "{text}"')
    return value


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(message)


def main():
    parser = Parser(description="PyTorch peer of npm run train (see bench/peers.ts).")
    parser.add_argument("--model-py", required=True, help="the network: a model.py of the project's export")
    parser.add_argument("--epochs", type=positive, default=10)
    parser.add_argument("--batch-size", type=positive, default=128)
    parser.add_argument("--lr", type=base_rate, default=0.003)
    parser.add_argument("--lr-schedule", choices=("cosine", "constant"), default="cosine")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=positive, default=2, help="torch.set_num_threads (default: 2)")
    parser.add_argument("--data", help="directory with the four Fashion-MNIST files, gzipped or not")
    parser.add_argument("--augment", type=parse_augment, help="flip, shift:N, or both, as npm run train's --augment")
    parser.add_argument("--describe", action="store_true", help="print what would run, as JSON, and exit")
    try:
        args = parser.parse_args()
        torch.set_num_threads(args.threads)
        info = describe(args.model_py, args.threads)
        if args.describe:
            print(json.dumps(info))
            return 0
        warn_about(info)
        print(
            f"torch {info['torch']} (Python {info['python']}), BLAS: {info['blas']['name']} "
            f"({info['blas']['library'] or 'linked in'}), {args.threads} threads, "
            f"OPENBLAS_NUM_THREADS={info['openblasThreads']}, {info['parameters']} parameters",
            file=sys.stderr,
        )
        train(args)
        return 0
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
