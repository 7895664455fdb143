"""The messages between the grader and the worker that runs learner code.

A message is a length-prefixed `torch.save` payload holding only plain data: dicts,
lists, tuples, str, int, float, bool, None, and plain tensors. Both sides read with
`torch.load(weights_only=True)`, whose unpickler refuses any other class, so a hostile
worker cannot run code in the grader by sending a crafted pickle.

Values that are not plain data (a numpy array, a custom object, a Tensor subclass) cross as
`Opaque` descriptions, and a torch.Generator crosses as `Gen`, a seed that the worker turns
back into a generator.
"""

import io
import struct
from dataclasses import dataclass

import torch

HEADER = struct.Struct(">Q")
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


def dumps(msg):
    buf = io.BytesIO()
    torch.save(msg, buf)
    payload = buf.getvalue()
    return HEADER.pack(len(payload)) + payload


def loads(payload):
    return torch.load(io.BytesIO(payload), weights_only=True)


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
