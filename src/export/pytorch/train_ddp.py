"""Continues a fashion-mnist-parallel run under PyTorch's DistributedDataParallel, as the same run.

Written by `npm run export -- --format pytorch` beside model.py (the network), model.safetensors
(its state_dict: the weights, and the layers' state that is not trained as buffers), run.json (the run's settings, progress and history) and, when the run was
checkpointed, checkpoint.safetensors (Adam's moments and the epoch's shuffled order).

    python3 train_ddp.py [--epochs N] [--out DIR] [--data DIR]      # one process
    python3 launch.py --nproc-per-node 2 train_ddp.py [...]         # 2 ranks here (see README.md)
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST:29400 train_ddp.py [...]

It trains step for step as the project's trainer (src/coordinator, src/worker) does, so that N
ranks here give the result of N workers there, to float rounding:
- the same data: the run's IDX files (for a run on a folder of pictures, the pictures as the run
  decoded, fitted and split them, which the export wrote beside this script), checked against the
  run's SHA-256 of them; grey images [n, H, W] or colour ones [n, H, W, C], each level divided by
  255 in float32;
- each epoch's order shuffled by the project's generator (mulberry32, src/rng.ts) from the
  checkpoint's state; a checkpoint taken mid-epoch continues that epoch's order;
- each global batch split across the ranks as the project splits it across its workers
  (src/sharding.ts): rank r computes shard r of WORLD_SIZE;
- each rank's loss is the summed cross-entropy of its shard, computed in float64 from float32
  logits; DDP averages the ranks' gradients, so the gradient is that average times the world size
  divided by the global batch's count: the sum of the shards' gradients over the count, as the
  project's all-reduce gives it;
- Adam as the project's (Keras's: epsilon added to sqrt(v), the bias corrections folded into the
  rate), in float64 arithmetic on float32 state (src/optimizer/adam.ts), not torch.optim.Adam;
- the learning-rate schedule over the whole run (src/optimizer/schedule.ts), at the run's step;
- the project's dropout masks, a hash of the seed, the layer, the step and the training image;
- the project's augmentation of the training images, when the run has one: flips and shifts, a
  hash of the seed, the epoch and the training image (model.py's `augmented`).

`--epochs N` trains N more epochs (the one in progress counts as one), by default to the end of the
run. A run stays the length it was planned (its cosine decay too) unless N takes it past its end:
then it is made that long, and the schedule spans the new length. After every epoch, rank 0 writes
model.safetensors, checkpoint.safetensors and run.json into --out (by default this folder, with
the scripts copied there when it is another), so a job that is stopped loses at most an epoch:
running this again continues from there. `npm run import -- --from DIR --out DIR2` brings the run
back to the project, whose `npm run train -- --resume DIR2` continues it.
"""

import argparse
import gzip
import hashlib
import json
import math
import os
import shutil
import sys
import time

# OpenBLAS reads this when torch loads it. Each rank runs torch's own threads (--threads); OpenBLAS
# threads on top of them oversubscribe the cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402  (after the environment above, on purpose)
import torch.distributed as dist  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import model as exported  # noqa: E402  (model.py beside this file)

# Version 2 holds the layers' state (buffers) in model.safetensors and Adam's moments for the
# parameters only; a version 1 folder is one whose layers have no state, read as it is. run.json's
# "data" (the model's metadata, the data's hash, the folder of pictures) may be absent in version 1
# (exports from before it) and is always there in version 2 (src/export/run-folder.ts).
FORMAT, VERSION, READS = "fashion-mnist-parallel/pytorch", 2, (1, 2)
RUN_JSON, WEIGHTS, CHECKPOINT = "run.json", "model.safetensors", "checkpoint.safetensors"
SCRIPTS = ("model.py", "train_ddp.py", "launch.py", "README.md")
# The places the project's loader looks for the data, in its order (src/data/fashion-mnist.ts).
DATA_DIRS = (os.path.join("data", "fashion-mnist"), "/usr/share/datasets/fashion-mnist")
# The four files of the data, as Fashion-MNIST names them; colour images, [n, H, W, C], are in
# files named idx4 in place of idx3 (which idx_file finds for these names).
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# Test images per forward pass when evaluating.
EVAL_ROWS = 1000


class UserError(Exception):
    """A bad flag, run folder or data file: printed as one line, exit code 1."""


# ---------------------------------------------------------------------------------------------
# The project's arithmetic, ported


class Rng:
    """The project's seeded generator, mulberry32 (src/rng.ts), on uint32 state."""

    STEP = 0x6D2B79F5

    def __init__(self, state):
        self.state = state & exported.MASK32

    def shuffled(self, count):
        """`range(count)` in the order the project's `shuffle` (Fisher-Yates, from the end) puts
        it, advancing the state as that does. The count - 1 floats it draws come from states
        state + k * STEP, so they are computed at once, as int64 tensors of uint32 values."""
        order = list(range(count))
        if count < 2:
            return order
        k = torch.arange(1, count, dtype=torch.int64)
        t = (self.state + k * self.STEP) & exported.MASK32
        self.state = (self.state + (count - 1) * self.STEP) & exported.MASK32
        t = exported.imul(t ^ (t >> 15), t | 1)
        t = t ^ ((t + exported.imul(t ^ (t >> 7), t | 61)) & exported.MASK32)
        floats = (t ^ (t >> 14)).to(torch.float64) / 4294967296
        # The k-th float picks j for i = count - k, as `Math.floor(next() * (i + 1))`.
        spans = torch.arange(count, 1, -1, dtype=torch.float64)
        for i, j in zip(range(count - 1, 0, -1), torch.floor(floats * spans).to(torch.int64).tolist()):
            order[i], order[j] = order[j], order[i]
        return order


def shard_of(start, count, index, shards):
    """Shard `index` of `shards` of the `count` samples from `start`: contiguous, sizes within one
    of each other (src/sharding.ts)."""
    return start + (index * count) // shards, start + ((index + 1) * count) // shards


def learning_rate_at(schedule, base, step, total):
    """The rate at 0-based `step` of `total` (src/optimizer/schedule.ts)."""
    return base if schedule == "constant" else base * (1 + math.cos(math.pi * step / total)) / 2


class Adam:
    """The project's Adam (src/optimizer/adam.ts, Keras's update), per parameter i:
        m = beta1 m + (1 - beta1) g
        v = beta2 v + ((1 - beta2) g) g
        p = p - alpha m / (sqrt(v) + epsilon),   alpha = lr sqrt(1 - beta2^t) / (1 - beta1^t)
    in float64 arithmetic, with p, m and v stored as float32."""

    def __init__(self, params, m, v, steps, config):
        self.params, self.m, self.v, self.steps = params, m, v, steps
        self.beta1, self.beta2, self.epsilon = config["beta1"], config["beta2"], config["epsilon"]

    @torch.no_grad()
    def step(self, scale, learning_rate):
        """One step with the gradient `scale` times each parameter's .grad; False when a gradient
        is NaN or infinite (every rank sees the same all-reduced gradients, so all agree)."""
        self.steps += 1
        t = self.steps
        alpha = learning_rate * math.sqrt(1 - self.beta2**t) / (1 - self.beta1**t)
        finite = True
        # The same operations, each rounded once, as adam.ts; in place where that changes nothing.
        for name, p in self.params.items():
            g = p.grad.to(torch.float64).mul_(scale)
            finite = finite and bool(torch.isfinite(g).all())
            m = self.m[name].to(torch.float64).mul_(self.beta1).add_(torch.mul(g, 1 - self.beta1))
            v = self.v[name].to(torch.float64).mul_(self.beta2).add_(torch.mul(g, 1 - self.beta2).mul_(g))
            self.m[name].copy_(m)
            self.v[name].copy_(v)
            p.copy_(p.to(torch.float64).sub_(m.mul_(alpha).div_(v.sqrt_().add_(self.epsilon))))
        return finite


# ---------------------------------------------------------------------------------------------
# The data


def find_data(explicit, run):
    """The directory of the run's four IDX files: --data, else for a run on a folder of pictures this
    folder (the export wrote them here), else where the project's loader looks for Fashion-MNIST."""
    from_env = os.environ.get("FASHION_MNIST_DIR")
    pictures = (run.get("data") or {}).get("pictures")
    if explicit:
        candidates = [explicit]
    elif pictures:
        candidates = [HERE]
    else:
        candidates = [from_env] if from_env else DATA_DIRS
    for directory in candidates:
        if all(idx_file(directory, name) for name in FILES):
            return directory
    if pictures and not explicit:
        raise UserError(
            f"the run's pictures (from {pictures['folder']}), as IDX files, are not in {HERE}: "
            "copy the exported folder whole, or pass --data DIR with them"
        )
    raise UserError(
        f"the data is not in {' or '.join(candidates)}: copy the four IDX files the run was trained on "
        "(for Fashion-MNIST, apt-get install dataset-fashion-mnist) and pass --data DIR"
    )


def idx_file(directory, name):
    names = [name, name.replace("-idx3-", "-idx4-")] if "-idx3-" in name else [name]
    for candidate in (n + suffix for n in names for suffix in (".gz", "")):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def read_idx(path, ranks):
    """An IDX file of unsigned bytes (gzipped or not) as a uint8 tensor of one of `ranks` dimensions."""
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as file:
        try:
            data = file.read()
        except (OSError, EOFError) as error:
            raise UserError(f"{path}: cannot read it ({error})") from None
    magic = int.from_bytes(data[0:4], "big")
    rank = magic - 0x0800
    if len(data) < 4 or rank not in ranks or len(data) < 4 + 4 * rank:
        wanted = " or ".join(str(r) for r in ranks)
        raise UserError(f"{path}: not an IDX file of {wanted} dimensions (magic {magic:#010x})")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    body = 4 + 4 * rank
    if len(data) - body != math.prod(dims):
        raise UserError(f"{path}: {len(data) - body} bytes of data for dimensions {dims}")
    return torch.frombuffer(bytearray(data[body:]), dtype=torch.uint8).reshape(dims)


def load_split(directory, images_name, labels_name):
    """A split's images, uint8 [n, H, W] (grey) or [n, H, W, C], and its labels, int64."""
    images_path = idx_file(directory, images_name)
    images = read_idx(images_path, (3, 4))
    labels = read_idx(idx_file(directory, labels_name), (1,))
    shape = tuple(images.shape[1:]) + ((1,) if images.dim() == 3 else ())
    if shape != (exported.HEIGHT, exported.WIDTH, exported.CHANNELS):
        size = f"{exported.HEIGHT}x{exported.WIDTH}x{exported.CHANNELS}"
        raise UserError(f"{images_path}: images of {list(images.shape[1:])}; the model takes {size}")
    if len(labels) != len(images) or (len(labels) > 0 and int(labels.max()) >= exported.CLASSES):
        raise UserError(
            f"{images_path}: {len(labels)} labels for {len(images)} images, or a label past the {exported.CLASSES} classes"
        )
    return images, labels.to(torch.int64)


def as_input(images):
    """Levels to the network's input: float32 in [0, 1], each the float nearest value / 255 as the
    project computes it, NCHW."""
    x = images.to(torch.float32).div_(255)
    return x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)


def data_sha256(*splits):
    """SHA-256 of (images, labels) splits: the levels as stored (NHWC), then the labels as bytes,
    as the project's `npm run train` records it in metrics.json (src/data/data-hash.ts)."""
    digest = hashlib.sha256()
    for images, labels in splits:
        digest.update(exported.tensor_bytes(images))
        digest.update(exported.tensor_bytes(labels.to(torch.uint8)))
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# The run folder


def read_run(directory):
    """run.json, the weights, and (with a checkpoint) Adam's moments and the epoch's order."""
    path = os.path.join(directory, RUN_JSON)
    try:
        with open(path, encoding="utf-8") as file:
            run = json.load(file)
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot read it ({error}); export the run again with npm run export") from None
    if not isinstance(run, dict) or run.get("format") != FORMAT or run.get("version") not in READS:
        raise UserError(f"{path}: not a run written by npm run export (format {FORMAT}, version {VERSION})")
    if run["version"] != 1 and "data" not in run:
        raise UserError(f"{path}: it has no \"data\", which a version {VERSION} run.json has; export the run again")
    if run["model"]["layers"] != exported.LAYERS:
        raise UserError(f"{path}: its layers are not those of model.py beside it; export the run again")
    state = run["state"]
    stamp = str(state["adamSteps"] if state else 0)
    params, metadata = read_tensors(os.path.join(directory, WEIGHTS))
    check_stamp(WEIGHTS, metadata, stamp)
    try:
        network = exported.with_weights(params, os.path.join(directory, WEIGHTS))
    except ValueError as error:
        raise UserError(str(error)) from None
    moments = None
    if state is not None:
        tensors, metadata = read_tensors(os.path.join(directory, CHECKPOINT))
        check_stamp(CHECKPOINT, metadata, stamp)
        names = [name for name, _ in network.named_parameters()]
        expected = {f"adam.{k}.{n}" for k in "mv" for n in names} | {"epoch.order"}
        if set(tensors) != expected:
            raise UserError(f"{os.path.join(directory, CHECKPOINT)}: not the moments and order of this network")
        moments = {k: {n: tensors[f"adam.{k}.{n}"].clone() for n in names} for k in "mv"}
        moments["order"] = tensors["epoch.order"].to(torch.int64).tolist()
    return run, network, moments


def read_tensors(path):
    try:
        return exported.read_safetensors(path)
    except (OSError, ValueError) as error:
        raise UserError(str(error).splitlines()[0]) from None


def check_stamp(name, metadata, stamp):
    if metadata.get("adamSteps") != stamp:
        raise UserError(
            f"{name} was written at step {metadata.get('adamSteps')} and run.json at step {stamp} "
            "(stopped while saving?): copy the folder of one save whole"
        )


def write_run(directory, run, network, moments):
    """The run as it stands after an epoch, each file atomically, run.json last."""
    stamp = {"adamSteps": str(run["state"]["adamSteps"])}
    run["version"] = VERSION
    # A version 1 folder from before "data" recorded nothing of its data: version 2 says so in nulls.
    run.setdefault("data", {"metadata": None, "sha256": None, "pictures": None})
    # The parameters and the buffers (the layers' state that is not trained); Adam's moments are the parameters'.
    weights = {name: value.detach().cpu() for name, value in network.state_dict().items()}
    checkpoint = {f"adam.{k}.{name}": moments[k][name].cpu() for k in "mv" for name, _ in network.named_parameters()}
    checkpoint["epoch.order"] = torch.tensor(moments["order"], dtype=torch.int32)
    exported.write_safetensors(os.path.join(directory, CHECKPOINT), checkpoint, stamp)
    exported.write_safetensors(os.path.join(directory, WEIGHTS), weights, stamp)
    write_text(os.path.join(directory, RUN_JSON), json.dumps(run, indent=2) + "\n")


def write_text(path, text):
    temporary = f"{path}.tmp-{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


# ---------------------------------------------------------------------------------------------
# Training


class World:
    """This process's place among the ranks, from the variables torchrun (or launch.py) sets."""

    def __init__(self, backend):
        self.distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ
        self.rank = int(os.environ.get("RANK", 0))
        self.size = int(os.environ.get("WORLD_SIZE", 1))
        self.local_rank = int(os.environ.get("LOCAL_RANK", 0))
        self.local_size = int(os.environ.get("LOCAL_WORLD_SIZE", self.size))
        self.backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        self.device = torch.device(f"cuda:{self.local_rank}" if self.backend == "nccl" else "cpu")

    def start(self):
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            # TF32 would round the float32 products to 10-bit mantissas, which the project never does.
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        if self.distributed:
            dist.init_process_group(self.backend)

    def sum(self, tensor):
        """The tensor summed over the ranks, in place."""
        if self.distributed:
            dist.all_reduce(tensor)
        return tensor

    def stop(self):
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()


def augment_list(augment):
    """The augmentation as the project's --augment writes it, e.g. `flip,shift:2`."""
    return ",".join((["flip"] if augment["flip"] else []) + ([f"shift:{augment['shift']}"] if augment["shift"] else []))


def plural(count, what):
    return f"{count} {what}{'s' if count != 1 else ''}"


def say(world, line):
    if world.rank == 0:
        print(line, flush=True)


def train(args, world):
    run, network, moments = read_run(HERE)
    config, state = run["config"], run["state"]
    data = find_data(args.data, run)
    train_images, train_labels = load_split(data, FILES[0], FILES[1])
    test_images, test_labels = load_split(data, FILES[2], FILES[3])
    digest = data_sha256((train_images, train_labels), (test_images, test_labels))
    recorded = (run.get("data") or {}).get("sha256")
    if recorded is not None and digest != recorded:
        raise UserError(
            f"the data in {data} is not the run's (sha256 {digest[:12]}..., and the run's is {recorded[:12]}...): "
            "pass --data with the files it was trained on"
        )
    # A run on pictures carries them: a folder for the results elsewhere gets them too.
    carried = [idx_file(HERE, name) for name in FILES] if (run.get("data") or {}).get("pictures") and data == HERE else []
    count = len(train_labels)
    batch = config["batchSize"]
    steps = math.ceil(count / batch)
    if state is None:
        if args.epochs is None:
            raise UserError(
                "the run was exported without a checkpoint: pass --epochs N to train N epochs from its weights"
            )
        # A new run from the weights, as the project's train({ model }) of a tf.Sequential: Adam
        # from zero, the generator at the seed (no weights are drawn), the schedule over N epochs.
        state = {"trainCount": count, "epochsDone": 0, "stepsDone": 0, "adamSteps": 0, "rngState": config["seed"]}
        planned, run["history"] = args.epochs, []
        moments = {k: {n: torch.zeros_like(p) for n, p in network.named_parameters()} for k in "mv"}
        moments["order"] = []
    else:
        planned = config["epochs"]
        if state["trainCount"] != count:
            raise UserError(
                f"the run was on {state['trainCount']} training images and {data} has {count}: "
                "pass --data with the run's own files"
            )
    names = [name for name, _ in network.named_parameters()]
    epochs_done, steps_done = state["epochsDone"], state["stepsDone"]
    more = args.epochs if args.epochs is not None else planned - epochs_done
    if more < 1:
        raise UserError(f"the run is finished (epoch {epochs_done} of {planned}): pass --epochs N to train N more")
    total_epochs = max(planned, epochs_done + more)
    total_steps = total_epochs * steps
    augment = config.get("augment")
    out = os.path.abspath(args.out or HERE)

    network.to(world.device)
    params = dict(network.named_parameters())
    moments = {**moments, **{k: {n: moments[k][n].to(world.device) for n in names} for k in "mv"}}
    model = network
    if world.distributed:
        model = DistributedDataParallel(network, device_ids=[world.device] if world.device.type == "cuda" else None)
    adam = Adam(params, moments["m"], moments["v"], state["adamSteps"], config["adam"])
    rng = Rng(state["rngState"])
    train_images, train_labels = train_images.to(world.device), train_labels.to(world.device)
    test_images, test_labels = test_images.to(world.device), test_labels.to(world.device)
    order = torch.tensor(moments["order"], dtype=torch.int64)
    # The epoch's [loss sum, correct, samples] on this rank; rank 0 starts from the checkpoint's.
    totals = torch.zeros(3, dtype=torch.float64, device=world.device)
    if steps_done > 0 and world.rank == 0:
        totals += torch.tensor(state["stats"], dtype=torch.float64).reshape(-1, 3).sum(0).to(world.device)

    where = "from the exported weights"
    if epochs_done or steps_done:
        where = f"after epoch {epochs_done}, step {steps_done}"
    extended = ""
    if total_epochs > planned:
        extended = f" (extended from {plural(planned, 'epoch')}: the schedule now spans {total_epochs})"
    threads = plural(torch.get_num_threads(), "thread")
    how = f"one process, {threads}"
    if world.distributed:
        how = f"{world.backend} on {world.device.type}, {threads} per rank"
    say(
        world,
        f"Continuing {where} to epoch {epochs_done + more} of {total_epochs}{extended}: {count} images, "
        f"{plural(world.size, 'rank')} ({how}); model {config['model']}, "
        f"global batch {batch}, Adam lr {config['adam']['learningRate']} ({config['schedule']}), seed {config['seed']}"
        + ("" if augment is None else f", augment {augment_list(augment)}"),
    )
    checked = "the run's" if recorded is not None else "the run recorded none to check it against"
    source = "the run's pictures, as IDX files in this folder" if carried else data
    say(world, f"Data: {source}, sha256 {digest} ({checked})")
    for epoch in range(epochs_done + 1, epochs_done + more + 1):
        started = time.perf_counter()
        if steps_done == 0:
            order = torch.tensor(rng.shuffled(count), dtype=torch.int64)
            totals.zero_()
        say(world, f"Epoch {epoch}/{total_epochs}")
        model.train()
        for step in range(steps_done, steps):
            start = step * batch
            batch_count = min(batch, count - start)
            lo, hi = shard_of(start, batch_count, world.rank, world.size)
            samples = order[lo:hi].to(world.device)
            context = exported.DropoutContext(config["seed"], adam.steps, samples)
            if augment is None:
                images = train_images[samples]
            else:
                images = exported.augmented(
                    train_images, samples, config["seed"], epoch - 1, augment["flip"], augment["shift"]
                )
            logits = model(as_input(images), context)
            labels = train_labels[samples]
            loss = F.cross_entropy(logits.to(torch.float64), labels, reduction="sum")
            for p in params.values():
                p.grad = None
            loss.backward()
            rate = learning_rate_at(config["schedule"], config["adam"]["learningRate"], adam.steps, total_steps)
            if not adam.step(world.size / batch_count, rate):
                raise UserError(
                    f"training diverged: a gradient became NaN or infinite at epoch {epoch}, step {step + 1}; "
                    "lower the learning rate"
                )
            totals[0] += loss.detach()
            totals[1] += (logits.argmax(1) == labels).sum()
            totals[2] += hi - lo
        epoch_totals = world.sum(totals.clone())
        test_loss, test_accuracy = evaluate(network, test_images, test_labels, world)
        seconds = time.perf_counter() - started
        log = {
            "epoch": epoch,
            "loss": epoch_totals[0].item() / epoch_totals[2].item(),
            "accuracy": epoch_totals[1].item() / epoch_totals[2].item(),
            "testLoss": test_loss,
            "testAccuracy": test_accuracy,
            "seconds": seconds,
        }
        run["history"].append(log)
        say(
            world,
            f"{steps}/{steps} - {seconds:.1f}s - loss: {log['loss']:.4f} - accuracy: {log['accuracy']:.4f} - "
            f"test_loss: {test_loss:.4f} - test_accuracy: {test_accuracy:.4f}",
        )
        steps_done = 0
        state = {
            "trainCount": count,
            "epochsDone": epoch,
            "stepsDone": 0,
            "adamSteps": adam.steps,
            "rngState": rng.state,
            "stats": [0.0] * (3 * world.size),
        }
        run.update(config={**config, "epochs": total_epochs}, state=state)
        if world.rank == 0:
            os.makedirs(out, exist_ok=True)
            if out != HERE:
                for script in SCRIPTS:
                    shutil.copyfile(os.path.join(HERE, script), os.path.join(out, script))
                for path in carried:
                    target = os.path.join(out, os.path.basename(path))
                    if not os.path.exists(target):
                        shutil.copyfile(path, target)
            write_run(out, run, network, {**moments, "order": order.tolist()})
    say(world, f"Saved {WEIGHTS}, {CHECKPOINT} and {RUN_JSON} in {out}")
    say(world, f"Test accuracy: {run['history'][-1]['testAccuracy']:.4f}")


@torch.no_grad()
def evaluate(network, images, labels, world):
    """Mean loss and accuracy on the test split, each rank scoring its shard of it, as the project's
    workers do; the answer is the class with the highest log-probability, the first of equals."""
    network.eval()
    lo, hi = shard_of(0, len(labels), world.rank, world.size)
    totals = torch.zeros(2, dtype=torch.float64, device=images.device)
    for start in range(lo, hi, EVAL_ROWS):
        end = min(hi, start + EVAL_ROWS)
        log_probs = F.log_softmax(network(as_input(images[start:end])), 1)
        target = labels[start:end]
        totals[0] -= log_probs.gather(1, target[:, None]).to(torch.float64).sum()
        totals[1] += (log_probs.argmax(1) == target).sum()
    world.sum(totals)
    return totals[0].item() / len(labels), totals[1].item() / len(labels)


def positive(text):
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f'must be an integer >= 1, got "{text}"')
    return int(text)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(message)


def main():
    parser = Parser(description="Continues a fashion-mnist-parallel run under DistributedDataParallel.")
    parser.add_argument("--epochs", type=positive, help="epochs to train (default: to the end of the run)")
    parser.add_argument("--out", help="where the results go (default: this folder)")
    parser.add_argument(
        "--data", help="the directory of the run's four IDX files, gzipped or not (default: those beside this script, if any)"
    )
    parser.add_argument("--backend", choices=("gloo", "nccl"), help="default: nccl with GPUs, else gloo")
    parser.add_argument("--threads", type=positive, help="torch threads per rank (default: cores over ranks here)")
    world = None
    try:
        args = parser.parse_args()
        world = World(args.backend)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        torch.set_num_threads(args.threads or max(1, cores // world.local_size))
        world.start()
        train(args, world)
        return 0
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: the run is saved as of its last epoch; the same command continues it", file=sys.stderr)
        return 130
    finally:
        if world is not None:
            world.stop()


if __name__ == "__main__":
    sys.exit(main())
