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


def test_values_keep_their_type_and_bits():
    nan_bits = torch.tensor([float("nan"), -0.0, float("inf")])
    obj = {
        "floats": [float("nan"), float("-inf"), -0.0, 1e-310, 0.1],
        "ints": (0, -1, 2**70),  # 2**70 does not fit an int64: still an int
        "kinds": [(), [], {}, [()], ""],
        "text": "naïve \ud800 \x00",  # a lone surrogate and a NUL as learner code may print them
        "tag_like": {"l": ["T", 0], "__posgrade__x": ["d"]},  # a learner's dict that looks like the format
        "tensors": [nan_bits, torch.tensor(3), torch.zeros(0, 4), torch.zeros(2, 0, dtype=torch.int64),
                    torch.arange(12).view(3, 4).t(),  # not contiguous
                    torch.tensor([1 + 2j]).conj(),  # a lazy conjugate
                    torch.randn(2, 3, dtype=torch.bfloat16), torch.tensor([True, False])],
        "dtypes": [torch.bfloat16, torch.uint16, torch.float8_e4m3fn], "device": torch.device("cpu"),
    }
    assert wire.dumps(obj)[wire.HEADER.size:].startswith(wire.MAGIC)  # the JSON form, not torch.save
    out = roundtrip(obj)
    assert out["floats"][0] != out["floats"][0] and out["floats"][1:3] == [float("-inf"), -0.0]
    assert str(out["floats"][2]) == "-0.0" and out["floats"][3:] == [1e-310, 0.1]
    assert out["ints"] == (0, -1, 2**70) and type(out["ints"]) is tuple
    assert out["kinds"] == [(), [], {}, [()], ""] and type(out["kinds"][0]) is tuple
    assert out["text"] == obj["text"] and out["tag_like"] == obj["tag_like"]
    for got, sent in zip(out["tensors"], obj["tensors"]):
        assert got.dtype == sent.dtype and got.shape == sent.shape
        assert torch.equal(_bits(got), _bits(sent))
    assert out["dtypes"] == obj["dtypes"] and out["device"] == torch.device("cpu")


def _bits(t):
    return t if t.dtype == torch.bool else t.resolve_conj().contiguous().reshape(-1).view(torch.uint8)


def test_tensors_the_json_form_cannot_hold_still_cross():
    sparse = torch.eye(3).to_sparse()
    out = roundtrip({"s": sparse, "u": torch.tensor([1, 2], dtype=torch.uint16)})
    assert out["s"].layout == torch.sparse_coo and torch.equal(out["s"].to_dense(), torch.eye(3))
    assert out["u"].dtype == torch.uint16 and out["u"].tolist() == [1, 2]


def _fast(metas, tree, data=b""):
    import json
    skeleton = json.dumps([metas, tree]).encode()
    return wire.MAGIC + struct.pack(">I", len(skeleton)) + skeleton + data


@pytest.mark.parametrize("payload", [
    _fast([["float32", [2, 2], "cpu", 16]], ["T", 0], bytes(8)),  # bytes missing
    _fast([["float32", [2, 2], "cpu", 8]], ["T", 0], bytes(16)),  # count disagrees with the shape
    _fast([["float32", [-1], "cpu", 4]], ["T", 0], bytes(4)),  # negative size
    _fast([["qint8", [1], "cpu", 1]], ["T", 0], bytes(1)),  # a dtype the form does not hold
    _fast([], ["T", 0]), _fast([], ["T", -1]),  # no such tensor
    _fast([], ["x", 1]), _fast([], ["y", "__class__"]), _fast([], ["d", 1, 2]), _fast([], ["f", "1e400"]),
    _fast([["float32", [1], "tpu", 4]], ["T", 0], bytes(4)),
    wire.MAGIC + struct.pack(">I", 10**6) + b"[]",  # the JSON's length runs past the end
    wire.MAGIC + b"\x00\x00",
    _fast([], ["l"] * 1) + b"",
], ids=lambda p: None)
def test_crafted_messages_raise_one_error(payload):
    if payload.endswith(b'["l"]]'):  # the one well-formed message above: an empty list
        assert wire.loads(payload) == []
        return
    with pytest.raises(ValueError, match="not a well-formed message"):
        wire.loads(payload)


def test_crafted_bool_bytes_read_as_true():
    out = wire.loads(_fast([["bool", [3], "cpu", 3]], ["T", 0], bytes([0, 1, 2])))
    assert out.tolist() == [False, True, True] and (out == True).tolist() == [False, True, True]  # noqa: E712


def test_a_request_the_worker_cannot_read_is_answered_and_the_next_one_served(tmp_path):
    """An unreadable request (before any learner file ran: the grader's fault, or CUDA unusable in
    the worker) gets an error reply naming the grader; the worker lives on and serves the next."""
    import time

    from conftest import make_workspace

    from posgrade.grading import learner as learner_mod, process
    from posgrade.grading import session as runner

    ws = make_workspace(tmp_path / "ws", {"sinusoidal": "def sinusoidal_table(n, d, base=1e4):\n    return n * d\n"})
    worker = process.Worker(ws, runner.Limits(seconds=60), cuda=False)
    try:
        worker._wait_ready()
        body = wire.MAGIC + b"\x00\x00\x00\x05{not"
        worker._write(wire.HEADER.pack(len(body)) + body, time.monotonic() + 60, "")
        reply = worker._read(time.monotonic() + 60, "")
        assert not reply["ok"] and reply["error"]["where"] == "request" and not reply["error"]["learner_ran"]
        err = learner_mod.Learner(worker, "sinusoidal")._error(reply, "in sinusoidal_table()")
        assert err.kind == "internal" and err.summary.startswith("grader error (please report it)")
        assert learner_mod.Learner(worker, "sinusoidal").sinusoidal_table(3, 4) == 12
        assert worker.proc.poll() is None
    finally:
        worker.close()
