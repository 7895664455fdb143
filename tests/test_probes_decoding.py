"""The decoding exercise's worker-side probes: kv_cache drives a cache over several updates and
decode runs a sequence through a module in chunks with one cache; both refuse code that
modifies its inputs in place."""

import types

import pytest
import torch

from posgrade.kit import probes
from posgrade.solutions import decoding


def test_decode_chunks_with_a_cache_give_the_full_forward():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, 32, generator=g)
    kw = dict(cls="DecoderSelfAttention", args=(32, 4), kwargs={"n_kv_heads": 2}, x=x)
    full = probes.run("decode", decoding, chunks=[7], cache=False, **kw)
    steps = probes.run("decode", decoding, chunks=[3, 1, 1, 2], **kw)
    assert full["lengths"] == [] and steps["lengths"] == [0, 3, 4, 5, 7]
    assert [tuple(o.shape) for o in steps["outputs"]] == [(2, 3, 32), (2, 1, 32), (2, 1, 32), (2, 2, 32)]
    torch.testing.assert_close(torch.cat(steps["outputs"], dim=1), full["outputs"][0])
    # the same weights (init_seed) on both sides, and the facts name the contract's parameters
    assert full["facts"]["state_dict"] == ["q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"]


def test_decode_loads_the_given_weights():
    x = torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(1))
    sd = {k: torch.zeros_like(v) for k, v in decoding.DecoderSelfAttention(32, 4).state_dict().items()}
    out = probes.run("decode", decoding, cls="DecoderSelfAttention", args=(32, 4), state_dict=sd, x=x,
                     chunks=[4], cache=False)["outputs"][0]
    assert torch.equal(out, torch.zeros(1, 4, 32))


def test_kv_cache_reports_every_update_and_length():
    g = torch.Generator().manual_seed(2)
    updates = [(torch.randn(1, 2, n, 4, generator=g), torch.randn(1, 2, n, 3, generator=g)) for n in (2, 1)]
    result = probes.run("kv_cache", decoding, updates=updates)
    assert result["lengths"] == [0, 2, 3]
    k_all, v_all = result["results"][-1]
    assert torch.equal(k_all, torch.cat([updates[0][0], updates[1][0]], dim=2))
    assert torch.equal(v_all, torch.cat([updates[0][1], updates[1][1]], dim=2))


class ScalingCache(decoding.KVCache):
    def update(self, k, v):
        k.mul_(2)  # modifies the caller's tensor
        return super().update(k, v)


class InPlaceModule(decoding.DecoderSelfAttention):
    def forward(self, x, cache=None):
        out = super().forward(x, cache)
        x.zero_()
        return out


@pytest.mark.parametrize("probe", ["kv_cache", "decode"])
def test_in_place_changes_are_refused(probe):
    mod = types.SimpleNamespace(KVCache=ScalingCache, DecoderSelfAttention=decoding.DecoderSelfAttention)
    if probe == "decode":
        mod = types.SimpleNamespace(KVCache=decoding.KVCache, DecoderSelfAttention=InPlaceModule)
    k = torch.ones(1, 1, 1, 4)
    with pytest.raises(RuntimeError, match="in place"):
        if probe == "kv_cache":
            probes.run("kv_cache", mod, updates=[(k, k)])
        else:
            probes.run("decode", mod, cls="DecoderSelfAttention", args=(8, 2), x=torch.ones(1, 2, 8), chunks=[1, 1])
    assert torch.equal(k, torch.ones(1, 1, 1, 4))  # the probe worked on its own copies
