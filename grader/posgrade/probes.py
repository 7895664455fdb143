"""Probes: the steps that drive an exercise's nn.Module, run where that module lives.

The worker runs a probe on the learner's module and the grader runs the same probe on the
reference in its own process, so the two results are produced the same way and compared
in the grader. A probe returns plain data: tensors, numbers, dicts and lists.
"""

import torch


def module(mod, cls, args=(), kwargs=None, *, device="cpu", init_seed=0, state_dict=None,
           inputs=(), forward_kwargs=None, grad_output=None, train=False, return_state=False):
    """Build mod.<cls>(*args, **kwargs), optionally load weights, run forward (and backward).

    Returns {"facts": ..., "output": Tensor} and, with grad_output, "param_grads" (by
    parameter name, None where no gradient arrived) and "input_grads" (one per input).
    facts = {"parameters": {name: {"shape", "dtype", "requires_grad"}},
             "buffers": {name: {"shape", "dtype", "persistent"}}, "state_dict": [keys]}.
    """
    torch.manual_seed(init_seed)
    m = getattr(mod, cls)(*args, **(kwargs or {}))
    if not isinstance(m, torch.nn.Module):
        raise TypeError(f"{cls}(...) built a {type(m).__name__}, not an nn.Module")
    facts = describe(m)
    m = m.to(device)
    if state_dict is not None:
        m.load_state_dict({k: v.to(device) for k, v in state_dict.items()}, strict=True)
    m.train(train)
    want_grad = grad_output is not None
    xs = [x.detach().clone().to(device).requires_grad_(want_grad and x.is_floating_point())
          if isinstance(x, torch.Tensor) else x for x in inputs]
    before = [x.detach().clone() if isinstance(x, torch.Tensor) else None for x in xs]
    out = m(*xs, **(forward_kwargs or {}))
    for i, (x, b) in enumerate(zip(xs, before)):
        if b is not None and not torch.equal(x.detach(), b):
            raise RuntimeError(f"forward modified its input (argument {i + 1}) in place; "
                               "return a new tensor instead (x + pe, not x += pe)")
    result = {"facts": facts, "output": out}
    if want_grad:
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            raise RuntimeError("the output is not connected to the autograd graph, so no gradient "
                               "can flow back (was it built with .detach(), .data or numpy?)")
        # a scalar backward: out.backward(g) with a tensor g pulls in sympy (~0.4 s) on first use
        (out * grad_output.to(out.device, out.dtype)).sum().backward()
        result["param_grads"] = {n: p.grad for n, p in m.named_parameters()}
        result["input_grads"] = [x.grad if isinstance(x, torch.Tensor) else None for x in xs]
    if return_state:
        result["state_dict"] = {k: v.detach() for k, v in m.state_dict().items()}
    return result


def describe(m):
    non_persistent = set()
    for prefix, sub in m.named_modules():
        for b in getattr(sub, "_non_persistent_buffers_set", ()):
            non_persistent.add(f"{prefix}.{b}" if prefix else b)
    return {
        "parameters": {n: {"shape": list(p.shape), "dtype": str(p.dtype), "requires_grad": p.requires_grad}
                       for n, p in m.named_parameters()},
        "buffers": {n: {"shape": list(b.shape), "dtype": str(b.dtype), "persistent": n not in non_persistent}
                    for n, b in m.named_buffers()},
        "state_dict": list(m.state_dict().keys()),
    }


PROBES = {"module": module}


def run(name, mod, **kwargs):
    try:
        probe = PROBES[name]
    except KeyError:
        raise ValueError(f"unknown probe {name!r}") from None
    return probe(mod, **kwargs)
