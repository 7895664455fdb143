"""Hidden cases for the learned exercise.

The module's random initialisation is graded by its statistics; everything else is graded
with the reference's weights loaded into the learner's module (load_state_dict), so both
compute with the same table.
"""

import pytest
import torch

from posgrade.grading.casekit import assert_fast, expect_error, points, randn
from posgrade.diagnosis.compare import assert_close, assert_equal, fail

EXERCISE = "learned"


@points(2)
@pytest.mark.parametrize("batch_size,seq_len", [(2, 3), (1, 1), (4, 9), (3, 0)])
def test_position_ids(learner, ref, batch_size, seq_len):
    """position_ids(B, L) is arange(L) repeated per row"""
    got = learner.position_ids(batch_size, seq_len)
    assert_close(got, ref.position_ids(batch_size, seq_len), what=f"position_ids({batch_size}, {seq_len})")


@points(3)
@pytest.mark.parametrize("past_length", [1, 5, 1000])
def test_position_ids_past_length(learner, ref, past_length):
    """positions continue after past_length (KV cache)"""
    got = learner.position_ids(2, 4, past_length)
    assert_close(got, ref.position_ids(2, 4, past_length), what=f"position_ids(2, 4, past_length={past_length})")


@points(1)
def test_position_ids_device(learner, ref, device):
    """position_ids(..., device=) creates the result there"""
    got = learner.position_ids(2, 3, 1, device=device)
    assert_close(got, ref.position_ids(2, 3, 1, device=device), what=f"position_ids(2, 3, 1, device={device!r})")


@points(1)
@pytest.mark.parametrize("batch_size,seq_len,past_length", [(-1, 4, 0), (2, -1, 0), (2, 4, -1)])
def test_position_ids_bad_arguments(learner, batch_size, seq_len, past_length):
    """a negative batch_size, seq_len or past_length raises ValueError"""
    expect_error(lambda: learner.position_ids(batch_size, seq_len, past_length), "ValueError",
                 f"position_ids({batch_size}, {seq_len}, {past_length})")


# -- the module ----------------------------------------------------------------------------

def run_module(impl, device, x, past_length=0, max_len=32, state_dict=None, grad_output=None,
               init_std=0.02, return_state=False):
    return impl.probe("module", cls="LearnedPositionalEmbedding", args=(max_len, x.shape[-1]),
                      kwargs={"init_std": init_std}, device=device, inputs=(x,),
                      forward_kwargs={"past_length": past_length}, state_dict=state_dict,
                      grad_output=grad_output, return_state=return_state)


def ref_weights(ref, max_len, d_model, gen):
    """A weight table for both modules, so forward is graded on the same numbers."""
    return {"weight": randn(gen, max_len, d_model)}


@points(3)
def test_parameters(learner):
    """one trainable parameter `weight` [max_len, d_model], created in __init__"""
    facts = run_module(learner, "cpu", torch.zeros(1, 2, 8), max_len=32)["facts"]
    params = facts["parameters"]
    if "weight" not in params:
        fail(f"after __init__ the module's parameters are {sorted(params) or 'none'}; create "
             "self.weight = nn.Parameter(...) in __init__ (a tensor made in forward is never trained)")
    assert_equal(sorted(params), ["weight"], "the module's parameter names")
    assert_equal(params["weight"]["shape"], [32, 8], "weight's shape")
    if not params["weight"]["requires_grad"]:
        fail("weight does not require grad, so it would never be trained")
    assert_equal(facts["state_dict"], ["weight"], "state_dict()'s keys")


def weight_of(out):
    """The `weight` entry of a probe's state_dict, or a failure that says it is missing."""
    state = out["state_dict"]
    if "weight" not in state:
        fail(f"the module's state_dict() has {sorted(state) or 'no entries'}, expected `weight` (the table as "
             "self.weight = nn.Parameter(...), not inside a submodule such as nn.Embedding)")
    return state["weight"]


@points(2)
@pytest.mark.parametrize("init_std", [0.02, 0.5])
def test_init_std(learner, init_std):
    """weight starts from N(0, init_std)"""
    w = weight_of(run_module(learner, "cpu", torch.zeros(1, 1, 64), max_len=1024, init_std=init_std,
                             return_state=True))
    n = w.numel()
    mean, std = float(w.double().mean()), float(w.double().std())
    # 65536 draws: the sample mean is within 5 standard errors, the sample std within 2%
    if abs(mean) > 5 * init_std / n**0.5:
        fail(f"weight has mean {mean:.3g}, expected about 0")
    if abs(std / init_std - 1) > 0.02:
        fail(f"weight has standard deviation {std:.3g}, expected init_std = {init_std}"
             + (" (nn.Embedding's default init is N(0, 1): set it with nn.init.normal_(w, std=init_std))"
                if abs(std - 1) < 0.05 else ""))


@points(2)
def test_no_padding_row(learner, gen):
    """position 0 is a real position: its row is initialised and trained"""
    x = torch.zeros(1, 3, 16)
    out = run_module(learner, "cpu", x, max_len=8, init_std=1.0, return_state=True)
    if weight_of(out)[0].abs().sum() == 0:
        fail("row 0 of weight is all zeros, as with padding_idx=0; positions are not padding")
    g = randn(gen, 1, 3, 16)
    grads = run_module(learner, "cpu", x, max_len=8, grad_output=g)["param_grads"]
    if grads.get("weight") is None or grads["weight"][0].abs().sum() == 0:
        fail("no gradient reaches row 0 of weight, as with padding_idx=0; position 0 must learn too")


@points(3)
@pytest.mark.parametrize("batch,seq_len,d_model", [(2, 5, 8), (1, 1, 4), (3, 32, 6)])
def test_forward_values(learner, ref, device, gen, batch, seq_len, d_model):
    """forward(x) returns x + weight[:L]"""
    x = randn(gen, batch, seq_len, d_model, device=device)
    sd = ref_weights(ref, 32, d_model, gen)
    got = run_module(learner, device, x, state_dict=sd)["output"]
    assert_close(got, run_module(ref, device, x, state_dict=sd)["output"], what=f"forward(x) with x {list(x.shape)}")


@points(3)
@pytest.mark.parametrize("past_length", [1, 7, 29])
def test_forward_past_length(learner, ref, device, gen, past_length):
    """forward(x, past_length) adds the rows past_length .. past_length + L - 1"""
    x = randn(gen, 2, 3, 8, device=device)
    sd = ref_weights(ref, 32, 8, gen)
    got = run_module(learner, device, x, past_length=past_length, state_dict=sd)["output"]
    want = run_module(ref, device, x, past_length=past_length, state_dict=sd)["output"]
    assert_close(got, want, what=f"forward(x, past_length={past_length})")


@points(3)
def test_gradients(learner, ref, device, gen):
    """gradients reach weight (only the rows used) and x"""
    x = randn(gen, 3, 5, 8, device=device)
    g = randn(gen, 3, 5, 8, device=device)
    sd = ref_weights(ref, 32, 8, gen)
    got = run_module(learner, device, x, past_length=4, state_dict=sd, grad_output=g)
    want = run_module(ref, device, x, past_length=4, state_dict=sd, grad_output=g)
    if got["param_grads"].get("weight") is None:
        fail("no gradient reached weight: is it used through .data or .detach(), or rebuilt in forward?")
    assert_close(got["param_grads"]["weight"], want["param_grads"]["weight"], what="weight's gradient")
    assert_close(got["input_grads"][0], want["input_grads"][0], what="x's gradient")


@points(1)
@pytest.mark.parametrize("seq_len,past_length", [(33, 0), (4, 30), (2, -1)])
def test_forward_too_long(learner, seq_len, past_length):
    """past_length < 0 or past_length + L > max_len raises ValueError"""
    x = torch.zeros(1, seq_len, 4)
    expect_error(lambda: run_module(learner, "cpu", x, past_length=past_length, max_len=32), "ValueError",
                 f"forward with L={seq_len}, past_length={past_length} and max_len=32")


@points(1)
def test_efficiency(learner, ref, gen):
    """runs within 20x of the reference's time on a long sequence"""
    small, sd = randn(gen, 1, 3, 8), ref_weights(ref, 32, 8, gen)
    assert_close(run_module(learner, "cpu", small, state_dict=sd)["output"],
                 run_module(ref, "cpu", small, state_dict=sd)["output"], what="forward(x [1, 3, 8]) (the large input is timed only once a small one is right)")
    x = randn(gen, 2, 1024, 64)
    assert_fast(learner, "forward(x [2, 1024, 64])", cls="LearnedPositionalEmbedding",
                init_args=(1024, 64), inputs=(x,))
