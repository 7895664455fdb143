"""The messages between the grader and the worker that runs learner code.

A message is length-prefixed and holds only plain data: dicts with str keys, lists, tuples,
str, int, float, bool, None, torch dtypes and devices, and plain tensors. Its payload is, in the
common case, a JSON skeleton followed by each tensor's raw bytes (`MAGIC`, then the JSON's length,
the JSON, the bytes); read back with json and torch.frombuffer, after checking every dtype, shape
and byte count against the payload, so a hostile worker can send wrong values but never run code
in the grader. This costs a few microseconds where torch.save/torch.load cost ~0.7 ms a message,
and a grading run sends hundreds of them. A tensor that form cannot hold (a sparse or quantized
tensor, an unusual dtype) sends its whole message as a `torch.save` payload instead, read with
`torch.load(weights_only=True)`, whose unpickler refuses any class but plain data.

Values that are not plain data (a numpy array, a custom object, a Tensor subclass) cross as
`Opaque` descriptions, and a torch.Generator crosses as `Gen`, a seed that the worker turns
back into a generator.
"""

import ctypes
import io
import json
import math
import struct
from dataclasses import dataclass

import torch

HEADER = struct.Struct(">Q")
MAGIC = b"PGw1"  # a torch.save payload starts with "PK" (a zip file): the two never mix
_JSON_LEN = struct.Struct(">I")
_ALIGN = 64  # each tensor's bytes start on a multiple of this, counted from the first tensor's
# dtypes whose bytes torch.frombuffer reads back as they were; any other goes by torch.save
_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool)}
_ALL_DTYPES = {str(d).removeprefix("torch."): d for d in vars(torch).values() if isinstance(d, torch.dtype)}
TAG = "__posgrade__"  # marks the dicts that stand for Gen and Opaque on the wire


@dataclass(frozen=True)
class Gen:
    """A CPU torch.Generator seeded with `seed`, built on the side that receives it."""

    seed: int


@dataclass(frozen=True)
class Opaque:
    """Something that is not plain data: its type name and a short repr."""

    type: str
    repr: str

    def __str__(self):
        return f"a {self.type} ({self.repr})"


def encode(obj, _depth=0):
    """Plain-data form of obj: tensors detached as plain torch.Tensor, the rest described."""
    if _depth > 20:
        return {TAG: "opaque", "type": type(obj).__name__, "repr": "nested too deeply"}
    if isinstance(obj, torch.Tensor):
        t = obj.detach()
        if type(t) is not torch.Tensor:
            t = t.as_subclass(torch.Tensor)
        return t
    if obj is None or isinstance(obj, (bool, int, float, str, torch.dtype, torch.device)):
        return obj
    if isinstance(obj, Gen):
        return {TAG: "gen", "seed": int(obj.seed)}
    if isinstance(obj, Opaque):
        return {TAG: "opaque", "type": obj.type, "repr": obj.repr}
    if isinstance(obj, torch.Size):
        return tuple(int(s) for s in obj)
    if type(obj) in (tuple, list):
        return type(obj)(encode(o, _depth + 1) for o in obj)
    if type(obj) is dict and all(isinstance(k, str) for k in obj):
        return {k: encode(v, _depth + 1) for k, v in obj.items()}
    return {TAG: "opaque", "type": _type_name(obj), "repr": _short_repr(obj)}


def decode(obj):
    """Inverse of encode: Gen and Opaque markers back to their classes."""
    if isinstance(obj, dict):
        if obj.get(TAG) == "gen":
            return torch.Generator().manual_seed(int(obj["seed"]))
        if obj.get(TAG) == "opaque":
            return Opaque(str(obj.get("type")), str(obj.get("repr")))
        return {k: decode(v) for k, v in obj.items()}
    if type(obj) in (tuple, list):
        return type(obj)(decode(o) for o in obj)
    return obj


class _NotPlain(Exception):
    """Something the JSON form cannot hold: the message goes by torch.save."""


def dumps(msg):
    """HEADER (the payload's length) + payload, for a message of plain data (see encode)."""
    try:
        payload = _dump_fast(msg)
    except (_NotPlain, ValueError):  # ValueError: an int too long for JSON
        buf = io.BytesIO()
        torch.save(msg, buf)
        payload = buf.getvalue()
    return HEADER.pack(len(payload)) + payload


def loads(payload):
    """The message in payload (bytes, bytearray or memoryview, without HEADER). Raises ValueError
    for a payload that is not a well-formed message; pickle.UnpicklingError for a torch.save
    payload that holds anything but plain data."""
    if bytes(payload[: len(MAGIC)]) == MAGIC:
        return _load_fast(payload)
    return torch.load(io.BytesIO(payload), weights_only=True)


class _Blobs(list):
    """The tensors' bytes in order, each started at a multiple of _ALIGN; `size` is their length so far."""

    size = 0

    def add(self, data):
        pad = -self.size % _ALIGN
        if pad:
            self.append(bytes(pad))
        self.append(data)
        self.size += pad + len(data)


def _dump_fast(msg):
    metas, blobs = [], _Blobs()
    tree = _pack(msg, metas, blobs)
    skeleton = json.dumps([metas, tree], separators=(",", ":")).encode()
    return b"".join([MAGIC, _JSON_LEN.pack(len(skeleton)), skeleton, *blobs])


def _pack(obj, metas, blobs):
    """obj as JSON: scalars as they are, containers as ["l"|"t"|"d", ...], a tensor as ["T", i]."""
    t = type(obj)
    if obj is None or t in (bool, int, str) or (t is float and math.isfinite(obj)):
        return obj
    if t is float:  # JSON has no nan or inf
        return ["f", repr(obj)]
    if t in (list, tuple):
        return ["l" if t is list else "t", *(_pack(o, metas, blobs) for o in obj)]
    if t is dict:
        if not all(type(k) is str for k in obj):
            raise _NotPlain
        out = ["d"]
        for k, v in obj.items():
            out += [k, _pack(v, metas, blobs)]
        return out
    if isinstance(obj, torch.dtype):
        return ["y", str(obj).removeprefix("torch.")]
    if isinstance(obj, torch.device):
        return ["v", str(obj)]
    if t is torch.Tensor:
        metas.append(_tensor_bytes(obj, blobs))
        return ["T", len(metas) - 1]
    raise _NotPlain


def _tensor_bytes(t, blobs):
    name = str(t.dtype).removeprefix("torch.")
    if name not in _DTYPES or t.layout != torch.strided or t.device.type not in ("cpu", "cuda"):
        raise _NotPlain
    c = t.detach().resolve_conj().resolve_neg().to("cpu").contiguous()
    nbytes = c.numel() * c.element_size()
    data = ctypes.string_at(c.data_ptr(), nbytes) if nbytes else b""
    blobs.add(data)
    return [name, list(c.shape), str(t.device), nbytes]


def _load_fast(payload):
    view = memoryview(payload).cast("B")
    try:
        (n,) = _JSON_LEN.unpack(view[len(MAGIC) : len(MAGIC) + _JSON_LEN.size])
        start = len(MAGIC) + _JSON_LEN.size
        if start + n > len(view):
            raise ValueError("the JSON runs past the message")
        metas, tree = json.loads(bytes(view[start : start + n]))
        data = _Tensors(view[start + n :])
        return _unpack(tree, [data.take(meta) for meta in metas])
    except Exception as err:  # whatever a crafted payload trips on, the grader reports one error
        raise ValueError(f"not a well-formed message: {type(err).__name__}: {err}") from None


class _Tensors:
    """The tensors of a payload, read in order from its bytes after the JSON."""

    def __init__(self, data):
        self.data, self.offset = data, 0

    def take(self, meta):
        name, shape, device, nbytes = meta
        dtype = _DTYPES[name]
        if type(nbytes) is not int:
            raise ValueError(f"bad byte count {nbytes!r}")
        if not (type(shape) is list and all(type(s) is int and s >= 0 for s in shape)):
            raise ValueError(f"bad tensor shape {shape!r}")
        if math.prod(shape) * dtype.itemsize != nbytes:
            raise ValueError(f"shape {shape} of {name} does not hold {nbytes} bytes")
        start = self.offset + (-self.offset % _ALIGN)
        if start + nbytes > len(self.data):
            raise ValueError("a tensor runs past the message")
        self.offset = start + nbytes
        if nbytes == 0:
            t = torch.empty(shape, dtype=dtype)
        elif dtype is torch.bool:  # any nonzero byte is True: a crafted byte 2 must not make an odd bool
            t = torch.frombuffer(bytearray(self.data[start : self.offset]), dtype=torch.uint8).view(shape) != 0
        else:  # a copy: the tensor owns aligned memory of its own
            t = torch.frombuffer(bytearray(self.data[start : self.offset]), dtype=dtype).view(shape)
        dev = torch.device(device)
        if dev.type not in ("cpu", "cuda"):
            raise ValueError(f"bad device {device!r}")
        return t if dev.type == "cpu" else t.to(dev)


def _unpack(obj, tensors):
    if not isinstance(obj, list):
        return obj
    tag, rest = obj[0], obj[1:]
    if tag == "l":
        return [_unpack(o, tensors) for o in rest]
    if tag == "t":
        return tuple(_unpack(o, tensors) for o in rest)
    if tag == "d":
        if len(rest) % 2 or not all(type(k) is str for k in rest[::2]):
            raise ValueError("bad dict")
        return {k: _unpack(v, tensors) for k, v in zip(rest[::2], rest[1::2])}
    if tag == "T":
        (i,) = rest
        if type(i) is not int or i < 0:
            raise ValueError(f"bad tensor index {i!r}")
        return tensors[i]
    if tag == "y":
        return _ALL_DTYPES[rest[0]]
    if tag == "v":
        return torch.device(rest[0])
    if tag == "f":
        if rest[0] not in ("nan", "inf", "-inf"):
            raise ValueError(f"bad float {rest[0]!r}")
        return float(rest[0])
    raise ValueError(f"bad tag {tag!r}")


def _type_name(obj):
    t = type(obj)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _short_repr(obj):
    shape = getattr(obj, "shape", None)
    dtype = getattr(obj, "dtype", None)
    if shape is not None:
        return f"shape {tuple(shape)}, dtype {dtype}"
    try:
        text = repr(obj)
    except Exception:  # a hostile __repr__ must not break the worker
        text = "<repr failed>"
    return text if len(text) <= 120 else text[:117] + "..."
