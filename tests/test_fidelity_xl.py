"""Fidelity of solutions/xl.py against Hugging Face's XLNet (REFERENCES.md 3c).

References, none of them written from the solution (transformers.models.xlnet.modeling_xlnet):
  * `XLNetRelativeAttention.rel_shift_bnij` (layout [b, n, i, j]) and `rel_shift` ([i, j, b, n]);
  * `XLNetModel.positional_embedding` and `XLNetModel.relative_positional_encoding` (bidirectional,
    pos_seq = arange(klen, -qlen, -1), no clamp);
  * `XLNetRelativeAttention.rel_attn_core` on the same heads (seg_mat None, XLNet's float mask of
    1 = masked from `XLNetModel.create_mask`), and the whole `XLNetRelativeAttention.forward` with a
    memory, fed by our embedding and our attention on the layer's own projections.
Layouts: XLNet keeps [i, b, n, d] for heads and [b, n, i, j] for scores; the kit uses [b, n, i, d]
and [b, n, i, j], with r [n, klen + qlen, d] shared by the batch.

transformers is imported at module level on purpose: without it these tests must fail, not skip.
Nothing is downloaded (a tiny XLNetConfig, random weights).

Largest max-abs differences measured over every case below (torch 2.13.0+cpu,
transformers 5.25.0); run with -s to print the table of the current run:

    function                  reference                                  dtype     max |diff|
    rel_shift                 XLNet rel_shift_bnij                       float32   0 (exact)
    rel_shift                 XLNet rel_shift_bnij                       bfloat16  0 (exact)
    rel_shift                 XLNet rel_shift_bnij                       int64     0 (exact)
    rel_shift                 XLNet rel_shift ([i, j, b, n] layout)      float32   0 (exact)
    xl_positional_embedding   XLNet positional_embedding                 float32   0 (exact)
    xl_positional_embedding   XLNet relative_positional_encoding         float32   0 (exact)
    xl_relative_attention     XLNet rel_attn_core, weights               float32   1.2e-07
    xl_relative_attention     XLNet rel_attn_core, out                   float32   2.4e-07
    xl_relative_attention     XLNet rel_attn_core, weights               float64   3.3e-16
    xl_relative_attention     XLNet rel_attn_core, out                   float64   7.8e-16
    whole layer               XLNetRelativeAttention.forward with mems   float32   1.2e-06
                              (after XLNet's output projection, residual and LayerNorm)
"""

import pytest
import torch
from transformers import XLNetConfig
from transformers.models.xlnet.modeling_xlnet import XLNetModel, XLNetRelativeAttention

from posgrade.solutions import xl

MAX_DIFF = {}  # (function, reference, dtype) -> largest max-abs difference seen in this run


def max_abs(a, b):
    return (a.double() - b.double()).abs().max().item() if a.numel() else 0.0


def record(function, reference, dtype, ours, ref):
    """max |ours - ref|, remembered per (function, reference, dtype) for the summary."""
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    diff = max_abs(ours, ref)
    key = (function, reference, str(dtype).replace("torch.", ""))
    MAX_DIFF[key] = max(MAX_DIFF.get(key, 0.0), float(diff))
    return float(diff)


@pytest.fixture(scope="module", autouse=True)
def _print_max_diffs():
    yield
    print("\nlargest max-abs differences, solutions/xl.py vs reference:")
    for (function, reference, dtype), diff in sorted(MAX_DIFF.items()):
        print(f"  {function:24s} {reference:44s} {dtype:9s} {diff:.3e}")


def config(d_model=32, n_head=4):
    return XLNetConfig(vocab_size=16, d_model=d_model, n_layer=1, n_head=n_head, d_inner=2 * d_model,
                       dropout=0.0, attn_type="bi", bi_data=False, clamp_len=-1)


def xlnet_attention(d_model=32, n_head=4, seed=0, dtype=torch.float32):
    """XLNetRelativeAttention with every parameter drawn (its __init__ leaves them uninitialised)."""
    g = torch.Generator().manual_seed(seed)
    attn = XLNetRelativeAttention(config(d_model, n_head)).eval()
    with torch.no_grad():
        for name, p in attn.named_parameters():
            if not name.startswith("layer_norm"):
                p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.dim() == 3 else 1.0))
    return attn.to(dtype)


SHIFTS = [(1, 0), (1, 7), (4, 0), (5, 3), (16, 48)]  # (qlen, mlen)


# -- rel_shift --------------------------------------------------------------------------------

@pytest.mark.parametrize("qlen,mlen", SHIFTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64], ids=str)
def test_rel_shift_matches_rel_shift_bnij(qlen, mlen, dtype):
    klen = qlen + mlen
    g = torch.Generator().manual_seed(qlen * 100 + mlen)
    x = (torch.randn(2, 3, qlen, klen + qlen, generator=g) * 100).to(dtype)
    before = x.clone()
    ours = xl.rel_shift(x, klen)
    ref = XLNetRelativeAttention.rel_shift_bnij(x, klen=klen)
    assert ours.dtype == dtype and torch.equal(ours, ref)
    assert torch.equal(x, before)  # the input is not modified
    assert record("rel_shift", "XLNet rel_shift_bnij", dtype, ours, ref) == 0.0


@pytest.mark.parametrize("qlen,mlen", SHIFTS)
def test_rel_shift_matches_rel_shift_ijbn(qlen, mlen):
    """XLNet's other layout: rel_shift(x [i, j, b, n]) shifts along j with the same rule."""
    klen = qlen + mlen
    x = torch.randn(qlen, klen + qlen, 2, 3, generator=torch.Generator().manual_seed(mlen))
    ref = XLNetRelativeAttention.rel_shift(x, klen=klen)  # [i, klen, b, n]
    ours = xl.rel_shift(x.permute(2, 3, 0, 1), klen).permute(2, 3, 0, 1)
    assert torch.equal(ours, ref)
    record("rel_shift", "XLNet rel_shift ([i, j, b, n] layout)", x.dtype, ours, ref)


def test_rel_shift_columns_are_distances():
    """XLNet's column c is distance klen - c; after the shift row i, column j holds mlen + i - j."""
    qlen, mlen = 3, 2
    klen = qlen + mlen
    pos_seq = torch.arange(klen, -qlen, -1)  # what relative_positional_encoding uses
    x = pos_seq.expand(qlen, -1)[None, None]  # every row: the distance of each column
    got = XLNetRelativeAttention.rel_shift_bnij(x, klen=klen)[0, 0]
    want = mlen + torch.arange(qlen)[:, None] - torch.arange(klen)[None, :]
    assert torch.equal(got, want) and torch.equal(xl.rel_shift(x, klen)[0, 0], want)


# -- xl_positional_embedding ----------------------------------------------------------------

@pytest.mark.parametrize("qlen,mlen,d_model", [(1, 0, 2), (5, 3, 32), (64, 64, 128)])
def test_positional_embedding_matches_xlnet(qlen, mlen, d_model):
    klen = qlen + mlen
    model = XLNetModel(config(d_model, n_head=2))
    ref = model.relative_positional_encoding(qlen, klen)[:, 0, :]  # [klen + qlen, d]
    # the sequence and frequencies written from the paper / REFERENCES 3c, not copied from XLNet
    pos_seq = torch.arange(klen, -qlen, -1).float()
    inv_freq = 1.0 / 10000 ** (torch.arange(0, d_model, 2).float() / d_model)
    ours = xl.xl_positional_embedding(pos_seq, inv_freq)
    assert ours.shape == (klen + qlen, d_model) and ours.dtype == torch.float32
    assert record("xl_positional_embedding", "XLNet relative_positional_encoding", ours.dtype, ours, ref) \
        <= 1e-7 * klen
    direct = XLNetModel.positional_embedding(pos_seq, inv_freq)[:, 0, :]
    assert torch.equal(ours, direct)
    record("xl_positional_embedding", "XLNet positional_embedding", ours.dtype, ours, direct)


# -- xl_relative_attention against rel_attn_core ------------------------------------------------

CORES = {  # id: (b, qlen, mlen, causal mask)
    "no-memory": (2, 5, 0, False),
    "memory": (2, 4, 6, False),
    "one-query": (3, 1, 7, False),
    "memory-causal": (2, 6, 5, True),
}


def heads(attn, b, qlen, mlen, g, dtype):
    """Random heads in XLNet's layout: q [i, b, n, d], k, v [j, b, n, d], r [j + i, b, n, d]."""
    n, d = attn.n_head, attn.d_head
    klen = qlen + mlen

    def rnd(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)

    q, k, v = rnd(qlen, b, n, d), rnd(klen, b, n, d), rnd(klen, b, n, d)
    r = rnd(klen + qlen, 1, n, d).expand(-1, b, -1, -1)  # one embedding per distance, every row
    return q, k, v, r


def to_kit(t):
    """[i, b, n, d] -> [b, n, i, d]."""
    return t.permute(1, 2, 0, 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("case", list(CORES))
def test_attention_matches_rel_attn_core(case, dtype):
    b, qlen, mlen, causal = CORES[case]
    klen = qlen + mlen
    attn = xlnet_attention(dtype=dtype)
    g = torch.Generator().manual_seed(len(case))
    q, k, v, r = heads(attn, b, qlen, mlen, g, dtype)
    xl_mask = None
    mask = None
    if causal:
        model = XLNetModel(config())
        xl_mask = model.create_mask(qlen, mlen).to(dtype)[:, :, None, None]  # [i, j, 1, 1], 1 = masked
        mask = xl_mask[:, :, 0, 0] == 0  # [i, j], True = may attend
        assert mask.any(-1).all()  # no fully masked row: XLNet would spread it uniformly
        xl_mask = xl_mask.expand(qlen, klen, b, 1)
    with torch.no_grad():
        ref_vec, ref_prob = attn.rel_attn_core(q, k, v, r, seg_mat=None, attn_mask=xl_mask, output_attentions=True)
        out, weights = xl.xl_relative_attention(to_kit(q), to_kit(k), to_kit(v), r[:, 0].permute(1, 0, 2),
                                                attn.r_w_bias, attn.r_r_bias, mask)
    ref_weights = ref_prob.permute(2, 3, 0, 1)  # [i, j, b, n] -> [b, n, i, j]
    ref_out = to_kit(ref_vec)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert weights.dtype == out.dtype == dtype
    assert record("xl_relative_attention", "XLNet rel_attn_core, weights", dtype, weights, ref_weights) <= tol
    assert record("xl_relative_attention", "XLNet rel_attn_core, out", dtype, out, ref_out) <= tol


def test_whole_layer_with_memory_matches_xlnet_forward():
    """XLNetRelativeAttention.forward(h, mems, r) against: our embedding -> the layer's projections ->
    our attention -> the layer's post_attention (output projection, residual, LayerNorm)."""
    qlen, mlen, b, d_model = 5, 4, 2, 32
    klen = qlen + mlen
    attn = xlnet_attention(d_model)
    model = XLNetModel(config(d_model))
    g = torch.Generator().manual_seed(3)
    h = torch.randn(qlen, b, d_model, generator=g)
    mems = torch.randn(mlen, b, d_model, generator=g)
    xl_mask = model.create_mask(qlen, mlen)[:, :, None, None].expand(qlen, klen, b, 1)
    with torch.no_grad():
        r_ref = model.relative_positional_encoding(qlen, klen, bsz=b)  # [klen + qlen, b, d_model]
        ref, _ = attn(h, None, xl_mask, None, r_ref, None, mems=mems)

        pos_seq = torch.arange(klen, -qlen, -1).float()
        inv_freq = 1.0 / 10000 ** (torch.arange(0, d_model, 2).float() / d_model)
        pos_emb = xl.xl_positional_embedding(pos_seq, inv_freq)  # [klen + qlen, d_model]
        cat = torch.cat([mems, h], dim=0)  # [klen, b, d_model], the memory first

        def project(x, w):  # [L, b, D] x [D, n, d] -> [b, n, L, d]
            return torch.einsum("ibh,hnd->bnid", x, w)

        q, k, v = project(h, attn.q), project(cat, attn.k), project(cat, attn.v)
        r = torch.einsum("jh,hnd->njd", pos_emb, attn.r)  # [n, klen + qlen, d]
        mask = xl_mask[:, :, 0, 0] == 0
        out, _ = xl.xl_relative_attention(q, k, v, r, attn.r_w_bias, attn.r_r_bias, mask)
        ours = attn.post_attention(h, out.permute(2, 0, 1, 3))  # [b, n, i, d] -> [i, b, n, d]
    assert record("whole layer", "XLNetRelativeAttention.forward with mems", ours.dtype, ours, ref) <= 1e-5


def test_xlnet_scores_without_bias_terms_differ():
    """The comparison above can fail: leaving out r_r_bias moves XLNet's weights well past the tolerance."""
    attn = xlnet_attention()
    g = torch.Generator().manual_seed(1)
    q, k, v, r = heads(attn, 2, 4, 3, g, torch.float32)
    with torch.no_grad():
        _, ref_prob = attn.rel_attn_core(q, k, v, r, output_attentions=True)
        _, weights = xl.xl_relative_attention(to_kit(q), to_kit(k), to_kit(v), r[:, 0].permute(1, 0, 2),
                                              attn.r_w_bias, torch.zeros_like(attn.r_r_bias))
    assert max_abs(weights, ref_prob.permute(2, 3, 0, 1)) > 1e-2
