"""Reference fidelity of solutions/flash.py: it must compute what torch's own attention, torch's
own FlashAttention kernel and Hugging Face's attention compute.

  * flash_attention's output == torch.nn.functional.scaled_dot_product_attention on the CPU, for
    block sizes that do and do not divide the lengths (1, 7, 64, L), causal (is_causal for
    Lq == Lk, torch.nn.attention.bias.causal_lower_right for Lq != Lk) and not, in float64,
    float32, bfloat16 and float16; queries with no allowed key give zeros, as torch 2.13's SDPA.
  * lse == torch.logsumexp of the explicit float64 logits (-inf for a query with no key).
  * (out, lse) == torch's FlashAttention CPU kernel, aten._scaled_dot_product_flash_attention_for_cpu,
    which returns the logsumexp it keeps for the backward pass (natural log, float32).
  * the output == Hugging Face `eager_attention_forward` (LLaMA) with an additive causal mask.
  * online_softmax_update folded over the blocks of a row == torch.softmax of the whole row.

transformers 5.25.0 has no online-softmax (tiled) attention of its own in Python: its FlashAttention
paths call the flash-attn package or torch's kernels (searched: no logsumexp/lse recurrence in
transformers/integrations or models, except plain torch.logsumexp over full logits in granite_swa).
So torch's own flash kernel is the tiled implementation checked here.

Largest max-abs differences, measured with torch 2.13.0 on the CPU over every case here (pytest -s
prints the current run's): against SDPA, float64 7.8e-16, float32 4.8e-7, bfloat16 7.8e-3 (one
bf16 ulp in [1, 2)), float16 9.8e-4 (one fp16 ulp in [1, 2)); lse against torch.logsumexp of
float64 logits 2.7e-7; against torch's flash kernel, out 4.8e-7 and lse 4.8e-7; against HF eager
2.4e-7.
"""

import math

import pytest
import torch
import torch.nn.functional as F
import transformers  # noqa: F401  (a hard requirement of this file)
from torch.nn.attention.bias import causal_lower_right
from transformers.models.llama.modeling_llama import eager_attention_forward

from posgrade.solutions.flash import flash_attention, online_softmax_update

# |ours - torch| <= atol + rtol * |torch|: the same sums in another order (torch's kernels are
# blocked too), so a few roundings of the output's precision; half precision: both compute in
# float32 and round the output once, so about one ulp of |out| (2^-7 bf16, 2^-10 fp16 at 1).
TOL = {
    torch.float64: dict(atol=1e-12, rtol=1e-12),
    torch.float32: dict(atol=2e-6, rtol=2e-6),
    torch.bfloat16: dict(atol=2.0**-7, rtol=2.0**-6),
    torch.float16: dict(atol=2.0**-10, rtol=2.0**-9),
}
LARGEST = {}  # what -> largest max-abs difference seen


def record(what, got, want):
    finite = torch.isfinite(want.double())
    diff = float((got.double() - want.double())[finite].abs().max()) if finite.any() else 0.0
    LARGEST[what] = max(LARGEST.get(what, 0.0), diff)


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print("\nlargest max-abs differences:", {k: f"{v:.2g}" for k, v in sorted(LARGEST.items())})


def qkv(Lq, Lk, d=16, dv=16, dtype=torch.float32, seed=0, B=2, H=3):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*s, generator=g, dtype=torch.float64).to(dtype)
                 for s in ((B, H, Lq, d), (B, H, Lk, d), (B, H, Lk, dv)))


def explicit_logits(q, k, causal):
    Lq, Lk = q.shape[-2], k.shape[-2]
    logits = q.double() @ k.double().transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        logits = logits.masked_fill(~torch.ones(Lq, Lk, dtype=torch.bool).tril(Lk - Lq), float("-inf"))
    return logits


def torch_sdpa(q, k, v, causal):
    Lq, Lk = q.shape[-2], k.shape[-2]
    if not causal:
        return F.scaled_dot_product_attention(q, k, v)
    if Lq == Lk:
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(Lq, Lk))


LENGTHS = [(13, 13), (5, 19), (1, 12)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16, torch.float16],
                         ids=lambda t: str(t).removeprefix("torch."))
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("block", [1, 7, 64, None], ids=lambda b: "L" if b is None else str(b))
@pytest.mark.parametrize("lengths", LENGTHS, ids=lambda s: f"{s[0]}q{s[1]}k")
def test_output_matches_torch_sdpa(lengths, block, causal, dtype):
    Lq, Lk = lengths
    q, k, v = qkv(Lq, Lk, dtype=dtype)
    out, lse = flash_attention(q, k, v, causal=causal, block_size=block or max(Lq, Lk))
    want = torch_sdpa(q, k, v, causal)
    assert out.dtype == dtype and lse.dtype == torch.float32
    record(f"sdpa {str(dtype).removeprefix('torch.')}", out, want)
    torch.testing.assert_close(out, want, **TOL[dtype])


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("lengths", LENGTHS + [(9, 4)], ids=lambda s: f"{s[0]}q{s[1]}k")
def test_lse_matches_torch_logsumexp(lengths, causal):
    Lq, Lk = lengths
    q, k, v = qkv(Lq, Lk)
    _, lse = flash_attention(q, k, v, causal=causal, block_size=5)
    want = torch.logsumexp(explicit_logits(q, k, causal), dim=-1)
    record("lse vs logsumexp", lse, want)
    torch.testing.assert_close(lse.double(), want, atol=2e-6, rtol=2e-6)  # -inf where both are -inf


@pytest.mark.filterwarnings("ignore:Lower right causal bias will produce NaNs")
def test_no_allowed_key_gives_zero_like_torch():
    """causal_lower_right warns of NaN for Lq > Lk; torch 2.13's SDPA gives 0 for those rows (checked)."""
    q, k, v = qkv(9, 4)  # causal: the first 5 queries sit before every key
    out, lse = flash_attention(q, k, v, causal=True, block_size=3)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_lower_right(9, 4))
    assert torch.equal(out[..., :5, :], torch.zeros_like(out[..., :5, :]))
    assert torch.equal(want[..., :5, :], torch.zeros_like(want[..., :5, :]))  # torch 2.13's safe softmax
    assert torch.isneginf(lse[..., :5]).all() and torch.isfinite(lse[..., 5:]).all()
    torch.testing.assert_close(out, want, **TOL[torch.float32])


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("lengths", [(13, 13), (64, 64), (5, 19)], ids=lambda s: f"{s[0]}q{s[1]}k")
def test_matches_torch_flash_kernel(lengths, causal):
    """torch's own FlashAttention CPU kernel returns (out, logsumexp): both must agree."""
    Lq, Lk = lengths
    q, k, v = qkv(Lq, Lk)
    kw = {}
    if causal and Lq == Lk:
        kw = {"is_causal": True}
    elif causal:  # an additive float mask (the kernel takes no bool mask): 0 where allowed, -inf elsewhere
        allowed = torch.ones(Lq, Lk, dtype=torch.bool).tril(Lk - Lq)
        kw = {"attn_mask": torch.zeros(Lq, Lk).masked_fill(~allowed, float("-inf"))}
    want_out, want_lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, **kw)[:2]
    out, lse = flash_attention(q, k, v, causal=causal, block_size=16)
    record("torch flash kernel out", out, want_out)
    record("torch flash kernel lse", lse, want_lse)
    torch.testing.assert_close(out, want_out, **TOL[torch.float32])
    torch.testing.assert_close(lse, want_lse, **TOL[torch.float32])


@pytest.mark.parametrize("lengths", [(7, 7), (3, 11)], ids=lambda s: f"{s[0]}q{s[1]}k")
def test_matches_hf_eager_attention(lengths):
    Lq, Lk = lengths
    q, k, v = qkv(Lq, Lk)
    allowed = torch.ones(Lq, Lk, dtype=torch.bool).tril(Lk - Lq)
    mask = torch.zeros(1, 1, Lq, Lk).masked_fill(~allowed, torch.finfo(torch.float32).min)  # HF's additive mask

    class Module(torch.nn.Module):  # eager_attention_forward reads num_key_value_groups and training
        num_key_value_groups = 1

    want, _ = eager_attention_forward(Module().eval(), q, k, v, mask, scaling=q.shape[-1] ** -0.5)
    out, _ = flash_attention(q, k, v, causal=True, block_size=4)
    want = want.transpose(1, 2)  # HF returns [B, L, H, d]
    record("hf eager", out, want)
    torch.testing.assert_close(out, want, **TOL[torch.float32])


def test_online_softmax_update_folds_to_softmax():
    """Folding the blocks of a row one by one gives torch.softmax of the whole row, with every
    block's max above, below or equal to the running one."""
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(2, 4, 20, generator=g, dtype=torch.float64) * 3
    scores[0, 0, :5] = float("-inf")  # a row whose first block is fully masked
    v = torch.randn(2, 20, 6, generator=g, dtype=torch.float64)
    m = torch.full((2, 4), float("-inf"), dtype=torch.float64)
    l = torch.zeros(2, 4, dtype=torch.float64)
    acc = torch.zeros(2, 4, 6, dtype=torch.float64)
    for j in range(0, 20, 5):
        m, l, acc = online_softmax_update(m, l, acc, scores[..., j:j + 5], v[:, j:j + 5])
    torch.testing.assert_close(acc / l[..., None], torch.softmax(scores, -1) @ v, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(m + torch.log(l), torch.logsumexp(scores, -1), atol=1e-12, rtol=1e-12)
