"""Messages between grader and worker carry plain data only: a crafted pickle is refused."""

import io
import os
import pickle
import struct

import pytest
import torch

from posgrade.kit import wire


class Sub(torch.Tensor):
    pass


def roundtrip(obj):
    framed = wire.dumps(wire.encode(obj))
    (size,) = wire.HEADER.unpack(framed[: wire.HEADER.size])
    assert size == len(framed) - wire.HEADER.size
    return wire.decode(wire.loads(framed[wire.HEADER.size:]))


def test_plain_values_roundtrip():
    t = torch.arange(6.0).view(2, 3)
    out = roundtrip({"a": (t, 1, 2.5, "s", None, True), "b": [torch.float16, torch.device("cpu")]})
    assert torch.equal(out["a"][0], t) and out["a"][1:] == (1, 2.5, "s", None, True)
    assert out["b"] == [torch.float16, torch.device("cpu")]


def test_tensor_subclass_becomes_plain_tensor():
    out = roundtrip(torch.ones(2).as_subclass(Sub))
    assert type(out) is torch.Tensor and torch.equal(out, torch.ones(2))


def test_generator_marker_rebuilds_a_seeded_generator():
    g = roundtrip(wire.Gen(42))
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=torch.Generator().manual_seed(42)))


def test_unknown_objects_are_described_not_sent():
    out = roundtrip(object())
    assert isinstance(out, wire.Opaque) and out.type == "object"


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/posgrade-pwned",))


def test_crafted_pickle_is_refused(tmp_path):
    buf = io.BytesIO()
    torch.save({"value": Evil()}, buf)  # what a hostile worker could send
    with pytest.raises(pickle.UnpicklingError):
        wire.loads(buf.getvalue())
    assert not os.path.exists("/tmp/posgrade-pwned")
