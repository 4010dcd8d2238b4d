"""A network trained with fashion-mnist-parallel, as a PyTorch module.

Written by `npm run export -- --format pytorch` from the run's layer list (LAYERS below, in the
project's grammar). It takes images as float32 in [0, 1], NCHW `[n, CHANNELS, HEIGHT, WIDTH]`
(grey levels, or red, green and blue), and returns logits, one per class of CLASS_NAMES: the project's last layer applies the softmax, which here is left to the loss
(F.cross_entropy) or to `logits.softmax(1)`. Its weights are in model.safetensors beside this file:

    import model
    network = model.load()  # model.safetensors beside this file, or load(path)
    network.eval()
    probabilities = network(images).softmax(1)

It computes what the project's network computes, to float rounding. Three layers differ from the
usual PyTorch ones for that:
- `Flatten` orders the features of an image as the project (and Keras) does, NHWC: row, column,
  channel. So a Linear layer after it takes the project's weights, only transposed.
- `Dropout` drops the units the project's does when given a DropoutContext (a hash of the run's
  seed, the layer, the step, the training image and the unit: see `keep_mask`), so that a run
  continued here draws the masks it would have drawn at home; without one it is nn.Dropout.
- `BatchNorm` is Keras's BatchNormalization (the moving variance is the batch's biased one,
  `momentum` Keras's), its statistics summed over the ranks under torch.distributed.
A run that augments its training images does it as the project's gather does, from the same hash
(`augmented`, which train_ddp.py applies to each batch).

Nothing here needs more than torch: model.safetensors is read with the safetensors package when it
is installed, and by `read_safetensors` below when it is not (Debian 12 has no package for it).
"""

import json
import math
import os
import struct
import sys
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

# What `npm run export` wrote: the layer list, the images it takes, and the classes' names (None
# when the run did not record them).
LAYERS = "__LAYERS__"
HEIGHT, WIDTH, CHANNELS, CLASSES = __HEIGHT__, __WIDTH__, __CHANNELS__, __CLASSES__
CLASS_NAMES = "__CLASS_NAMES__"

HERE = os.path.dirname(os.path.abspath(__file__))


def build():
    """The network, with PyTorch's default initial weights; `load` gives it the run's."""
    return Network(
        [
            __MODULES__
        ]
    )


# ---------------------------------------------------------------------------------------------
# The layers


class Conv2d(nn.Conv2d):
    """A stride-1 convolution, then relu or nothing. `padding` is (before, after) in both
    dimensions: TensorFlow's `same` puts the odd row and column of an even kernel after, where
    nn.Conv2d pads both sides alike, so an uneven padding is applied by F.pad first."""

    def __init__(self, in_channels, out_channels, kernel_size, padding=(0, 0), relu=True):
        before, after = padding
        even = before == after
        super().__init__(in_channels, out_channels, kernel_size, padding=before if even else 0)
        self.uneven = None if even else (before, after, before, after)
        self.relu = relu

    def forward(self, x):
        if self.uneven is not None:
            x = F.pad(x, self.uneven)
        x = super().forward(x)
        return F.relu(x) if self.relu else x


class Linear(nn.Linear):
    """A fully connected layer, then relu or nothing (the output layer gives logits)."""

    def __init__(self, in_features, out_features, relu=True):
        super().__init__(in_features, out_features)
        self.relu = relu

    def forward(self, x):
        x = super().forward(x)
        return F.relu(x) if self.relu else x


class BatchNorm(nn.Module):
    """Keras's BatchNormalization over the channels (axis 1 of `[n, c, h, w]` or `[n, c]`), as the
    project's (src/model/layers/batch-norm.ts): while training, the batch's mean and biased
    variance, and moving = moving * momentum + batch's * (1 - momentum) with that variance (nn.
    BatchNorm2d would take the Bessel-corrected one, and 1 - momentum as its momentum); evaluation
    uses the moving statistics. Under torch.distributed the statistics are those of the global
    batch, every rank's sums added in float64 (and so are the backward pass's), as the project's
    workers add theirs: a run of N ranks is the run of N workers."""

    def __init__(self, channels, momentum=0.99, eps=1e-3):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x):
        shape = (1, -1) + (1,) * (x.dim() - 2)
        if not self.training:
            scale = self.weight.double() / torch.sqrt(self.running_var.double() + self.eps)
            shift = self.bias.double() - self.running_mean.double() * scale
            return (x.double() * scale.reshape(shape) + shift.reshape(shape)).to(x.dtype)
        return _GlobalBatchNorm.apply(x, self.weight, self.bias, self)

    def extra_repr(self):
        return f"{self.weight.numel()}, momentum={self.momentum}, eps={self.eps}"


def _all_ranks(tensor):
    """The tensor summed over the ranks, in place, when torch.distributed runs."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


class _GlobalBatchNorm(torch.autograd.Function):
    """BatchNorm's training pass and its gradient, with the global batch's sums. dgamma and dbeta
    are this rank's own sums, which DistributedDataParallel adds as it adds every gradient; the
    input's gradient takes the global sums of dy and dy * x_hat."""

    @staticmethod
    def forward(ctx, x, weight, bias, module):
        channels = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        shape = (1, -1) + (1,) * (x.dim() - 2)
        x64 = x.double()
        count = torch.tensor([x.numel() / channels], dtype=torch.float64, device=x.device)
        sums = _all_ranks(torch.cat([x64.sum(dims), (x64 * x64).sum(dims), count]))
        total = sums[-1]
        mean = sums[:channels] / total
        variance = torch.clamp(sums[channels : 2 * channels] / total - mean * mean, min=0)
        inverse = 1 / torch.sqrt(variance + module.eps)
        with torch.no_grad():
            m = module.momentum
            module.running_mean.copy_(module.running_mean.double() * m + mean * (1 - m))
            module.running_var.copy_(module.running_var.double() * m + variance * (1 - m))
        scale = weight.double() * inverse
        shift = bias.double() - mean * scale
        ctx.save_for_backward(x, weight, mean, inverse)
        ctx.total = total
        return (x64 * scale.reshape(shape) + shift.reshape(shape)).to(x.dtype)

    @staticmethod
    def backward(ctx, dy):
        x, weight, mean, inverse = ctx.saved_tensors
        channels = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        shape = (1, -1) + (1,) * (x.dim() - 2)
        dy64 = dy.double()
        centred = x.double() - mean.reshape(shape)
        local = torch.cat([dy64.sum(dims), (dy64 * centred).sum(dims) * inverse])
        dbias, dweight = local[:channels].to(weight.dtype), local[channels:].to(weight.dtype)
        sums = _all_ranks(local.clone())
        a = weight.double() * inverse
        b = -a * inverse * sums[channels:] / ctx.total
        k = -a * sums[:channels] / ctx.total - mean * b
        dx = dy64 * a.reshape(shape) + x.double() * b.reshape(shape) + k.reshape(shape)
        return dx.to(x.dtype), dweight, dbias, None


class Flatten(nn.Module):
    """Images to vectors in NHWC order, as the project's (and Keras's) Flatten: the features of
    `[n, c, h, w]` come row by row, column by column, channel by channel."""

    def forward(self, x):
        return (x.permute(0, 2, 3, 1) if x.dim() == 4 else x).flatten(1)


class DropoutContext(NamedTuple):
    """What fixes the project's dropout masks for a batch."""

    seed: int
    # The run's global step, 0-based: Adam's t - 1.
    step: int
    # The training image of each row of the batch (its index in the training set), int64.
    samples: torch.Tensor


class Dropout(nn.Module):
    """Inverted dropout: while training, each unit is kept with probability 1 - rate and scaled by
    1 / (1 - rate); evaluation keeps everything. With a DropoutContext the masks are the project's
    (src/model/layers/dropout.ts), which depend on the unit's position in NHWC order: `shape` is a
    sample's shape there, (height, width, channels) or (features,)."""

    # Network.forward passes the DropoutContext to the layers that say they take it.
    uses_context = True

    def __init__(self, rate, layer, shape):
        super().__init__()
        self.rate, self.layer, self.shape = rate, layer, tuple(shape)
        # A hash h keeps its unit when h >= rate * 2^32: for integers, when h >= this.
        self.threshold = math.ceil(rate * 4294967296)
        # The project stores the scale in a float32 mask, and so does this.
        self.register_buffer("scale", torch.tensor(1 / (1 - rate), dtype=torch.float32), persistent=False)
        units = torch.arange(math.prod(self.shape), dtype=torch.int64)
        self.register_buffer("units", imul(units, GOLDEN), persistent=False)

    def forward(self, x, context=None):
        if not self.training or self.rate == 0:
            return x
        if context is None:
            return F.dropout(x, self.rate, True)
        samples = context.samples.to(x.device)
        mask = keep_mask(context.seed, self.layer, context.step, samples, self.units, self.threshold)
        mask = mask.reshape(len(x), *self.shape)
        if mask.dim() == 4:
            mask = mask.permute(0, 3, 1, 2)
        return x * (mask.to(x.dtype) * self.scale)

    def extra_repr(self):
        return f"rate={self.rate}, layer={self.layer}, shape={self.shape}"


class Network(nn.Module):
    """The layers in order; `context` goes to the layers that take one (Dropout)."""

    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x, context=None):
        for layer in self.layers:
            x = layer(x, context) if getattr(layer, "uses_context", False) else layer(x)
        return x


# ---------------------------------------------------------------------------------------------
# The project's dropout hash, on int64 tensors holding uint32 values (or on Python ints)

MASK32 = 0xFFFFFFFF
GOLDEN = 0x9E3779B9


def imul(a, b):
    """Math.imul's bits, a * b mod 2^32, for values in [0, 2^32), computed in 16-bit halves of b
    so that no product leaves int64."""
    return (a * (b & 0xFFFF) + (((a * (b >> 16)) & 0xFFFF) << 16)) & MASK32


def mix(h):
    """murmur3's finaliser, as dropout.ts's `mix`."""
    h = imul(h ^ (h >> 16), 0x85EBCA6B)
    h = imul(h ^ (h >> 13), 0xC2B2AE35)
    return h ^ (h >> 16)


def keep_mask(seed, layer, step, samples, units, threshold):
    """Which units of each sample the project's dropout layer at position `layer` keeps at `step`:
    bool `[len(samples), len(units)]`. `units` holds imul(unit, GOLDEN) for each unit index."""
    base = mix(mix(mix((seed & MASK32) ^ GOLDEN) ^ layer) ^ step)
    per_sample = mix(samples.to(torch.int64) ^ base)
    return mix(per_sample[:, None] ^ units[None, :]) >= threshold


# ---------------------------------------------------------------------------------------------
# The project's augmentation of the training images (src/data/augment.ts), the same hash

AUGMENT_SALT = 0x5BD1E995


def augment_transforms(seed, epoch, samples, flip, shift):
    """How the project's gather changes training images `samples` (an int64 tensor) in epoch
    `epoch` (0-based) of the run seeded `seed`, as `transformOf` draws it: per sample, whether it
    is flipped left to right, and the offsets dx (right) and dy (down), each in [-shift, shift]."""
    hash = mix(mix(mix((seed & MASK32) ^ AUGMENT_SALT) ^ epoch) ^ samples.to(torch.int64))
    span = 2 * shift + 1
    flips = (mix(hash ^ 1) & 1) == 1 if flip else torch.zeros_like(hash, dtype=torch.bool)
    zero = torch.zeros_like(hash)
    dx = mix(hash ^ 2) % span - shift if shift > 0 else zero
    dy = mix(hash ^ 3) % span - shift if shift > 0 else zero
    return flips, dx, dy


def augmented(images, samples, seed, epoch, flip, shift):
    """`images[samples]` (levels, [n, H, W] or [n, H, W, C]) as the project's gather writes them
    with augmentation: pixel (y, x) is pixel (y - dy, x - dx) of the image flipped when drawn so,
    and 0 where that is outside it (`copyTransformed`)."""
    flips, dx, dy = augment_transforms(seed, epoch, samples.cpu(), flip, shift)
    flips, dx, dy = flips.to(images.device), dx.to(images.device), dy.to(images.device)
    batch = images[samples]
    n, height, width = batch.shape[:3]
    rows = torch.arange(height, device=images.device)[None, :] - dy[:, None]
    columns = torch.arange(width, device=images.device)[None, :] - dx[:, None]
    inside = ((rows >= 0) & (rows < height))[:, :, None] & ((columns >= 0) & (columns < width))[:, None, :]
    columns = torch.where(flips[:, None], width - 1 - columns, columns)
    picked = batch[
        torch.arange(n, device=images.device)[:, None, None],
        rows.clamp(0, height - 1)[:, :, None],
        columns.clamp(0, width - 1)[:, None, :],
    ]
    if picked.dim() == 4:
        inside = inside[:, :, :, None]
    return picked * inside.to(picked.dtype)


# ---------------------------------------------------------------------------------------------
# Weights: safetensors, with or without the package

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I32": torch.int32, "I64": torch.int64}
SIZES = {"F32": 4, "F64": 8, "I32": 4, "I64": 8}
NAMES = {dtype: name for name, dtype in DTYPES.items()}
# The safetensors library's own bound on the header.
MAX_HEADER_BYTES = 100_000_000


def read_safetensors(path):
    """The tensors of a safetensors file, by name, and its metadata (a dict of strings). Raises
    ValueError with one line when the file is not a well-formed one of these dtypes."""
    try:
        from safetensors import safe_open
    except ImportError:
        return _read_safetensors(path)
    try:
        with safe_open(path, framework="pt") as file:
            return {name: file.get_tensor(name) for name in file.keys()}, file.metadata() or {}
    except Exception as error:  # the package's errors have no common class
        raise ValueError(f"{path}: not a usable safetensors file ({str(error).splitlines()[0]})") from error


def _read_safetensors(path):
    with open(path, "rb") as file:
        data = file.read()

    def bad(why):
        return ValueError(f"{path}: not a usable safetensors file ({why})")

    if len(data) < 8:
        raise bad(f"{len(data)} bytes, fewer than the 8 of the header's length")
    (length,) = struct.unpack("<Q", data[:8])
    if length > MAX_HEADER_BYTES:
        raise bad(f"a header of {length} bytes, more than {MAX_HEADER_BYTES}")
    if 8 + length > len(data):
        raise bad(f"the header's length, {length} bytes, runs past the end of the file")
    try:
        header = json.loads(data[8 : 8 + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise bad("its header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    body = memoryview(data)[8 + length :]
    tensors, end = {}, 0
    entries = sorted(header.items(), key=lambda item: _offsets(item[1], bad, item[0]))
    for name, entry in entries:
        begin, stop = entry["data_offsets"]
        dtype = entry.get("dtype")
        if dtype not in DTYPES:
            raise bad(f"{name}: dtype {dtype!r}, expected one of {', '.join(DTYPES)}")
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise bad(f"{name}: its shape is not a list of sizes")
        if begin != end:
            raise bad(f"{name}: its bytes start at {begin}, where the previous tensor's end at {end}")
        count = math.prod(shape)
        if stop - begin != count * SIZES[dtype]:
            raise bad(f"{name}: {stop - begin} bytes for {count} values of {dtype}")
        if stop > len(body):
            raise bad(f"{name}: its bytes end past the end of the file")
        tensors[name] = torch.frombuffer(bytearray(body[begin:stop]), dtype=DTYPES[dtype]).reshape(shape)
        end = stop
    if end != len(body):
        raise bad(f"{len(body) - end} bytes after the last tensor")
    return tensors, metadata


def _offsets(entry, bad, name):
    offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
        raise bad(f"{name}: data_offsets is not [begin, end]")
    if not 0 <= offsets[0] <= offsets[1]:
        raise bad(f"{name}: data_offsets {offsets} do not make a range")
    return offsets


def write_safetensors(path, tensors, metadata):
    """Writes `tensors` (a dict of CPU tensors) and `metadata` (strings) as a safetensors file at
    `path`, atomically: under a temporary name, flushed, then renamed over the old file."""
    temporary = f"{path}.tmp-{os.getpid()}"
    try:
        with open(temporary, "wb") as file:
            for chunk in _safetensors_bytes(tensors, metadata):
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _safetensors_bytes(tensors, metadata):
    """The file's chunks, laid out as the safetensors library lays them out: tensors by dtype
    size (largest first), then by name, the header padded with spaces to a multiple of 8 bytes."""
    items = sorted(tensors.items(), key=lambda item: (-item[1].element_size(), item[0]))
    header, offset = {"__metadata__": dict(metadata)}, 0
    for name, tensor in items:
        size = tensor.numel() * tensor.element_size()
        header[name] = {
            "dtype": NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    yield struct.pack("<Q", len(text)) + text
    for _, tensor in items:
        yield tensor_bytes(tensor)


def tensor_bytes(tensor):
    """A tensor's values as little-endian bytes."""
    if sys.byteorder != "little":
        raise RuntimeError("safetensors files are little-endian; this machine is not")
    tensor = tensor.detach().to("cpu").contiguous()
    try:
        return tensor.numpy().tobytes()
    except RuntimeError:  # torch without numpy
        code = {torch.float32: "f", torch.float64: "d", torch.int32: "i", torch.int64: "q", torch.uint8: "B"}[tensor.dtype]
        return struct.pack(f"<{tensor.numel()}{code}", *tensor.flatten().tolist())


def load(path=None):
    """The network with the weights of `path` (default: model.safetensors beside this file)."""
    path = path or os.path.join(HERE, "model.safetensors")
    tensors, _ = read_safetensors(path)
    return with_weights(tensors, path)


def with_weights(tensors, source):
    """The network with these weights (by state_dict name), once they are exactly its own:
    names, shapes, float32, finite. `source` names them in the ValueError's one line."""
    network = build()
    expected = {name: tuple(value.shape) for name, value in network.state_dict().items()}
    found = {name: tuple(value.shape) for name, value in tensors.items()}
    if found != expected:
        missing = sorted(set(expected) - set(found))
        other = sorted(name for name in found if expected.get(name) != found[name])
        raise ValueError(f"{source}: not this network's weights (missing {missing}, unexpected or misshapen {other})")
    for name, value in tensors.items():
        if value.dtype != torch.float32 or not torch.isfinite(value).all():
            raise ValueError(f"{source}: {name} is not finite float32 values")
    network.load_state_dict(tensors)
    return network
