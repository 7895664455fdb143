"""The worker-side probes: module_calls runs forwards in order on one module, and torch_ops
finds torch's own attention however the code reached it, and nothing in the references."""

import types

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.functional import scaled_dot_product_attention as renamed_sdpa

from posgrade.kit import probes
from posgrade.solutions import attention

POSITIONS = ("none", "sinusoidal", "learned", "relative", "rope", "alibi")


def steps(q, k, v, x, positions=POSITIONS):
    out = [{"call": "scaled_dot_product_attention", "args": [q, k, v]},
           {"call": "scaled_dot_product_attention", "args": [q, k, v],
            "kwargs": {"mask": torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool), "dropout_p": 0.1}}]
    for position in positions:
        out.append({"module": "MultiHeadAttention", "args": [16, 4], "kwargs": {"position": position},
                    "inputs": [x], "forward_kwargs": {"causal": True}})
    out.append({"module": "MultiHeadAttention", "args": [16, 4], "kwargs": {"dropout": 0.2},
                "inputs": [x], "train": True})
    return out


@pytest.fixture
def inputs():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(2, 2, 4, 8, generator=g), torch.randn(2, 2, 6, 8, generator=g),
            torch.randn(2, 2, 6, 8, generator=g), torch.randn(2, 5, 16, generator=g))


def test_reference_uses_no_torch_attention(inputs):
    result = probes.run("torch_ops", attention, steps=steps(*inputs))
    assert result["found"] == {}
    assert len(result["steps"]) == 2 + len(POSITIONS) + 1


def fake(sdpa=None, module=None):
    """A module like a learner's attention.py whose code takes one of torch's shortcuts."""
    mod = types.SimpleNamespace(scaled_dot_product_attention=attention.scaled_dot_product_attention,
                                MultiHeadAttention=attention.MultiHeadAttention)
    if sdpa:
        mod.scaled_dot_product_attention = lambda q, k, v, mask=None, bias=None, dropout_p=0.0: (sdpa(q, k, v), None)
    if module:
        mod.MultiHeadAttention = module
    return mod


@pytest.mark.parametrize("how,expect", [
    (lambda q, k, v: F.scaled_dot_product_attention(q, k, v), "torch._C._nn.scaled_dot_product_attention"),
    (lambda q, k, v: renamed_sdpa(q, k, v), "torch._C._nn.scaled_dot_product_attention"),
    (lambda q, k, v: torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v)[0],
     "torch.ops.aten._scaled_dot_product_flash_attention_for_cpu"),
    (lambda q, k, v: torch.ops.aten._scaled_dot_product_attention_math(q, k, v)[0],
     "torch.ops.aten._scaled_dot_product_attention_math"),
], ids=["F", "imported_under_another_name", "aten_kernel", "aten_math"])
def test_sdpa_is_found_however_it_is_called(inputs, how, expect):
    found = probes.run("torch_ops", fake(sdpa=how), steps=steps(*inputs)[:1])["found"]
    assert expect in found, found
    assert found[expect] == "scaled_dot_product_attention(...)"


class WrapsTorchMHA(nn.Module):
    def __init__(self, d_model, n_heads, **kwargs):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True)

    def forward(self, x, mask=None, causal=False):
        return self.attn(x, x, x, need_weights=False)[0]


class CallsFunctionalMHA(WrapsTorchMHA):
    def forward(self, x, mask=None, causal=False):
        a = self.attn
        t = x.transpose(0, 1)
        out = F.multi_head_attention_forward(t, t, t, a.embed_dim, a.num_heads, a.in_proj_weight, a.in_proj_bias,
                                             None, None, False, 0.0, a.out_proj.weight, a.out_proj.bias,
                                             need_weights=False)[0]
        return out.transpose(0, 1)


@pytest.mark.parametrize("train", [False, True])
def test_nn_multihead_attention_is_found(inputs, train):
    step = dict(steps(*inputs, positions=["none"])[2], train=train)
    with torch.no_grad():  # the eval fast path (aten::_native_multi_head_attention) is taken without grad
        found = probes.run("torch_ops", fake(module=WrapsTorchMHA), steps=[step])["found"]
    assert "torch.nn.MultiheadAttention (submodule attn)" in found
    assert "torch.nn.MultiheadAttention.forward" in found
    assert nn.MultiheadAttention.forward.__qualname__ == "MultiheadAttention.forward"  # restored


def test_functional_multi_head_attention_is_found(inputs):
    step = steps(*inputs, positions=["none"])[2]
    found = probes.run("torch_ops", fake(module=CallsFunctionalMHA), steps=[step])["found"]
    assert "torch.nn.functional.multi_head_attention_forward" in found


def test_patched_forward_is_restored_when_a_step_raises(inputs):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        probes.run("torch_ops", fake(sdpa=boom), steps=steps(*inputs)[:1])
    assert nn.MultiheadAttention.forward.__qualname__ == "MultiheadAttention.forward"


def test_module_calls_run_in_order_on_one_module():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 6, 16, generator=g)
    keys = attention.MultiHeadAttention(16, 4).state_dict()
    sd = {k: torch.randn(v.shape, generator=g) * 0.2 for k, v in keys.items()}
    calls = [{"inputs": (x,), "forward_kwargs": {"causal": True}},
             {"inputs": (x[:, :3],), "forward_kwargs": {"causal": True}},
             {"inputs": (x,), "train": True}, {"inputs": (x,), "train": True}, {"inputs": (x,)}]
    out = probes.run("module_calls", attention, cls="MultiHeadAttention", args=(16, 4), kwargs={"dropout": 0.5},
                     state_dict=sd, calls=calls)["outputs"]
    full, prefix, train1, train2, evaluated = out
    torch.testing.assert_close(prefix, full[:, :3])  # causal: the first rows do not see the later tokens
    assert not torch.equal(train1, train2)  # fresh dropout on every training call
    assert not torch.equal(train1, evaluated)
    reference = probes.run("module", attention, cls="MultiHeadAttention", args=(16, 4), state_dict=sd, inputs=(x,))
    torch.testing.assert_close(evaluated, reference["output"])


def test_module_calls_cast_module_and_inputs_to_dtype():
    x = torch.randn(1, 4, 16)
    mask = torch.ones(4, 4, dtype=torch.bool)
    (out,) = probes.run("module_calls", attention, cls="MultiHeadAttention", args=(16, 4), kwargs={"position": "rope"},
                        dtype=torch.float64, calls=[{"inputs": (x,), "forward_kwargs": {"mask": mask}}])["outputs"]
    assert out.dtype == torch.float64


class AddsInPlace(nn.Module):
    def forward(self, x):
        x += 1
        return x


def test_module_calls_refuse_in_place_changes_to_inputs():
    mod = types.SimpleNamespace(AddsInPlace=AddsInPlace)
    x = torch.zeros(1, 4, 2)
    with pytest.raises(RuntimeError, match="modified its input"):
        probes.run("module_calls", mod, cls="AddsInPlace", calls=[{"inputs": (x,)}])
    assert torch.equal(x, torch.zeros(1, 4, 2))  # the caller's tensor is a copy away
