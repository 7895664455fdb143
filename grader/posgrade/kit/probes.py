"""Probes: the steps that drive an exercise's nn.Module, run where that module lives.

The worker runs a probe on the learner's module and the grader runs the same probe on the
reference in its own process, so the two results are produced the same way and compared
in the grader. A probe returns plain data: tensors, numbers, dicts and lists.

    module         build a module, load weights, one forward (and backward): outputs, grads, facts
    module_calls   build a module, load weights, several forwards in a row (prefixes of a
                   sequence, repeated calls in training mode): their outputs
    torch_ops      run functions and module forwards under a torch function mode, and report
                   which of torch's own operations they reached (by name)
"""

from contextlib import ExitStack

import torch


def _seed(seed, device):
    """Seed the generators a build or forward on `device` draws from. The CPU's alone unless CUDA
    is used: torch.manual_seed also queues a seeding of every other backend, each with a stack
    trace, ~2 ms a call, and a diagnosis builds thousands of modules."""
    if torch.device(device).type == "cpu":
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)


def _built(mod, cls, args, kwargs, init_seed, device, dtype=None, state_dict=None):
    """(module, its facts): mod.<cls>(*args, **kwargs) built under init_seed, moved to device (and
    dtype), with state_dict loaded when given (load_weights: a learner-level error if it does not fit)."""
    _seed(init_seed, device)
    m = getattr(mod, cls)(*args, **(kwargs or {}))
    if not isinstance(m, torch.nn.Module):
        raise TypeError(f"{cls}(...) built a {type(m).__name__}, not an nn.Module")
    facts = describe(m)
    m = m.to(device=device, dtype=dtype) if dtype is not None else m.to(device)
    if state_dict is not None:
        load_weights(m, state_dict, device)
    return m, facts


def module(mod, cls, args=(), kwargs=None, *, device="cpu", init_seed=0, state_dict=None,
           inputs=(), forward_kwargs=None, grad_output=None, train=False, return_state=False):
    """Build mod.<cls>(*args, **kwargs), optionally load weights, run forward (and backward).

    Returns {"facts": ..., "output": Tensor} and, with grad_output, "param_grads" (by
    parameter name, None where no gradient arrived) and "input_grads" (one per input).
    facts = {"parameters": {name: {"shape", "dtype", "requires_grad"}},
             "buffers": {name: {"shape", "dtype", "persistent"}}, "state_dict": [keys]}.
    """
    m, facts = _built(mod, cls, args, kwargs, init_seed, device, state_dict=state_dict)
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


def load_weights(m, state_dict, device):
    """Load the contract's weights (state_dict, by the spec's names) into m, or raise RuntimeError
    saying what the module lacks or has in another shape, in the spec's terms (instead of
    load_state_dict's "Unexpected key(s) in state_dict", which reads as the learner's own call)."""
    own = m.state_dict()
    missing = [k for k in state_dict if k not in own]  # the spec's names the module does not have
    extra = [k for k in own if k not in state_dict]
    shapes = [f"`{k}` has shape {list(own[k].shape)}, the spec's is {list(v.shape)}"
              for k, v in state_dict.items() if k in own and hasattr(own[k], "shape") and own[k].shape != v.shape]
    problems = []
    if missing:
        names = ", ".join(f"`{k}`" for k in missing)
        problems.append(f"your module has no parameter or persistent buffer {names} (its state_dict holds "
                        f"{', '.join(f'`{k}`' for k in own) or 'nothing'}); it must be made in __init__ under "
                        f"that name (an nn.Parameter for a trained table)")
    if extra:
        problems.append(f"your module's state_dict also holds {', '.join(f'`{k}`' for k in extra)}, which the "
                        f"spec does not have")
    problems += shapes
    if problems:
        raise RuntimeError("; ".join(problems))
    m.load_state_dict({k: v.to(device) for k, v in state_dict.items()}, strict=True)


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


def module_calls(mod, cls, args=(), kwargs=None, *, device="cpu", dtype=None, init_seed=0,
                 state_dict=None, calls=(), train=False):
    """Build mod.<cls>(*args, **kwargs), load weights, then run forward once per call, in order.

    Each call is a dict {"inputs": (...), "forward_kwargs": {...}, "train": bool (default
    `train`)}; tensors in inputs and forward_kwargs are copied to device (floating ones also to
    dtype, bool masks keep theirs), and forward must not modify its inputs in place (as in
    `module`). The module keeps its state between calls, as in a loop, so repeated calls in
    training mode draw fresh dropout. Returns {"facts": ..., "outputs": [one output per
    call]}, computed without autograd.
    """
    m, facts = _built(mod, cls, args, kwargs, init_seed, device, dtype, state_dict)

    def move(v):  # a copy of its own: the calls' inputs may be views of one tensor
        if not isinstance(v, torch.Tensor):
            return v
        if dtype is not None and v.is_floating_point():
            return v.detach().to(device=device, dtype=dtype, copy=True)
        return v.detach().to(device, copy=True)

    outputs = []
    with torch.no_grad():
        for call in calls:
            m.train(call.get("train", train))
            xs = [move(x) for x in call.get("inputs", ())]
            kw = {k: move(v) for k, v in (call.get("forward_kwargs") or {}).items()}
            before = [x.clone() if isinstance(x, torch.Tensor) else None for x in xs]
            outputs.append(m(*xs, **kw))
            for i, (x, b) in enumerate(zip(xs, before)):
                if b is not None and not torch.equal(x, b):
                    raise RuntimeError(f"forward modified its input (argument {i + 1}) in place; "
                                       "return a new tensor instead (x + pe, not x += pe)")
    return {"facts": facts, "outputs": outputs}


# torch's own attention, as parts of names (matched without "_", spaces or case): functional
# SDPA and its aten kernels and autograd nodes, nn.MultiheadAttention, its functional forward
# and its fast path (aten::_native_multi_head_attention), flex attention
TORCH_ATTENTION = ("scaled_dot_product", "multi_head_attention", "flex_attention")


def torch_ops(mod, *, steps, patterns=TORCH_ATTENTION, device="cpu", cls=None):
    """Run steps from mod and name the torch operations they reached whose names contain a pattern.

    A step is {"call": fname, "args": [...], "kwargs": {...}} (a function of mod), or
    {"module": cls, "args": [...], "kwargs": {...}, "inputs": [...], "forward_kwargs": {...},
    "train": bool} (build mod.<cls> and run one forward). Tensors are moved to device.
    `cls` is not used here: Learner.probe names it in its messages as the code under test.
    Three nets catch an operation, whatever name the code imported it under:
      * a torch function mode sees every call into torch's Python API, torch.ops.aten.* too;
      * the autograd graph of the results names the kernels that ran (floating tensor
        arguments of a call are made to require grad, so that the graph exists);
      * for modules, the torch.nn submodules the built module holds, and a patched forward
        of each torch.nn class whose name matches (nn.MultiheadAttention).
    (A TorchDispatchMode would see the aten kernels too, but entering one imports
    torch._dynamo, about a second.) Returns {"found": {name: label of the first step that
    reached it}, "steps": [labels]}: plain data, the verdict is the grader's.
    """
    from torch.overrides import TorchFunctionMode

    found, labels = {}, []
    current = [""]

    def squash(text):  # "multi_head_attention", "MultiheadAttention" and "MultiHeadAttention" alike
        return text.replace("_", "").replace(" ", "").lower()

    wanted = [squash(p) for p in patterns]

    def note(name):
        if any(p in squash(name) for p in wanted):
            found.setdefault(name, current[0])

    class Functions(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            module_name = (getattr(func, "__module__", None) or "torch").replace("torch._ops.", "torch.ops.")
            note(f"{module_name}.{getattr(func, '__name__', None) or func}")
            return func(*args, **(kwargs or {}))

    def walk_graph(value, depth=0):
        if isinstance(value, (tuple, list)) and depth < 3:
            for v in value:
                walk_graph(v, depth + 1)
        if not isinstance(value, torch.Tensor) or value.grad_fn is None:
            return
        seen, stack = set(), [value.grad_fn]
        while stack and len(seen) < 10000:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            note(f"autograd node {type(node).__name__}")
            stack.extend(f for f, _ in node.next_functions)

    def watched(cls_):
        original = cls_.forward

        def forward(self, *a, **kw):
            note(f"torch.nn.{cls_.__name__}.forward")
            return original(self, *a, **kw)
        return original, forward

    nn_classes = [c for c in vars(torch.nn).values()
                  if isinstance(c, type) and issubclass(c, torch.nn.Module)
                  and any(p in squash(c.__name__) for p in wanted)]

    def move(v, grad=False):
        if not isinstance(v, torch.Tensor):
            return v
        v = v.detach().to(device)
        # a non-leaf that requires grad: the results get a graph, and in-place code still runs
        return v.requires_grad_(True) * 1 if grad and v.is_floating_point() else v

    with ExitStack() as stack:
        for c in nn_classes:
            original, forward = watched(c)
            c.forward = forward
            stack.callback(setattr, c, "forward", original)
        for step in steps:
            if "call" in step:
                current[0] = f"{step['call']}(...)"
                labels.append(current[0])
                args = [move(a, grad=True) for a in step.get("args", ())]
                kwargs = {k: move(v, grad=True) for k, v in (step.get("kwargs") or {}).items()}
                with Functions():
                    out = getattr(mod, step["call"])(*args, **kwargs)
                walk_graph(out)
                continue
            shown = ", ".join([repr(a) for a in step.get("args", ())] +
                              [f"{k}={v!r}" for k, v in (step.get("kwargs") or {}).items()])
            current[0] = f"{step['module']}({shown}).forward"
            labels.append(current[0])
            m = getattr(mod, step["module"])(*step.get("args", ()), **(step.get("kwargs") or {})).to(device)
            m.train(step.get("train", False))
            for name, sub in m.named_modules():
                if type(sub).__module__.startswith("torch.nn"):
                    note(f"torch.nn.{type(sub).__name__} (submodule {name or 'self'})")
            xs = [move(x) for x in step.get("inputs", ())]
            fkw = {k: move(v) for k, v in (step.get("forward_kwargs") or {}).items()}
            with Functions():
                out = m(*xs, **fkw)
            walk_graph(out)
    return {"found": found, "steps": labels}


PROBES = {"module": module, "module_calls": module_calls, "torch_ops": torch_ops}


def timed_target(mod, attr=None, args=(), kwargs=None, cls=None, init_args=(), init_kwargs=None,
                 inputs=(), forward_kwargs=None, device="cpu"):
    """A no-argument callable that runs mod.<attr>(*args, **kwargs), or the forward of a
    mod.<cls>(*init_args, **init_kwargs) built once here (eval mode, no grad), for timing."""
    if attr is not None:
        fn = getattr(mod, attr)
        return lambda: fn(*args, **(kwargs or {}))
    _seed(0, device)
    m = getattr(mod, cls)(*init_args, **(init_kwargs or {})).to(device).eval()
    xs = [x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs]

    def forward():
        with torch.no_grad():
            return m(*xs, **(forward_kwargs or {}))

    return forward


def run(name, mod, **kwargs):
    try:
        probe = PROBES[name]
    except KeyError:
        raise ValueError(f"unknown probe {name!r}") from None
    return probe(mod, **kwargs)


# -- decoding: a module and its KV cache, driven over several calls ------------------------------

def _moved(v, device, dtype=None):
    """A copy of its own on device (floating tensors also in dtype), so no call can alias another's input."""
    if not isinstance(v, torch.Tensor):
        return v
    if dtype is not None and v.is_floating_point():
        return v.detach().to(device=device, dtype=dtype, copy=True)
    return v.detach().to(device, copy=True)


def kv_cache(mod, *, updates=(), device="cpu", cls="KVCache"):
    """Build mod.<cls>() and call update(k, v) once per (k, v) in updates, in order.

    Returns {"results": [(k_all, v_all) of each update], "lengths": [length before the first
    update, then after each]}. update must not modify its inputs in place.
    """
    cache = getattr(mod, cls)()
    results, lengths = [], [cache.length]
    for i, (k, v) in enumerate(updates):
        k, v = _moved(k, device), _moved(v, device)
        before = (k.clone(), v.clone())
        results.append(cache.update(k, v))
        if not (torch.equal(k, before[0]) and torch.equal(v, before[1])):
            raise RuntimeError(f"update {i + 1} modified its k or v in place; return new tensors instead")
        lengths.append(cache.length)
    return {"results": results, "lengths": lengths}


def decode(mod, cls="DecoderSelfAttention", args=(), kwargs=None, *, device="cpu", dtype=None, init_seed=0,
           state_dict=None, x=None, chunks=(), cache=True, cache_cls="KVCache"):
    """Build mod.<cls>(*args, **kwargs), load weights, and run x [B, L, D] through forward in
    consecutive chunks along L (chunk sizes summing to at most L), all with one mod.<cache_cls>()
    when cache is true (a prefill, then steps), or each chunk on its own without a cache.

    Returns {"facts": ..., "outputs": [forward's output for each chunk], "lengths": [the cache's
    length before the first call, then after each]} ([] without a cache), computed without
    autograd. forward must not modify its input in place.
    """
    m, facts = _built(mod, cls, args, kwargs, init_seed, device, dtype, state_dict)
    m.eval()
    kv = getattr(mod, cache_cls)() if cache else None
    outputs, lengths = [], [kv.length] if cache else []
    start = 0
    with torch.no_grad():
        for n in chunks:
            piece = _moved(x[:, start:start + n], device, dtype)
            before = piece.clone()
            outputs.append(m(piece, cache=kv) if cache else m(piece))
            if not torch.equal(piece, before):
                raise RuntimeError("forward modified its input in place; return a new tensor instead")
            if cache:
                lengths.append(kv.length)
            start += n
    return {"facts": facts, "outputs": outputs, "lengths": lengths}


PROBES.update(kv_cache=kv_cache, decode=decode)


# -- flash: the peak memory of one call ------------------------------------------------------------

def peak_memory(mod, *, attr, args=(), kwargs=None, device="cpu", cls=None):
    """Run mod.<attr>(*args, **kwargs) once, its tensor arguments first copied to device, and
    measure the most memory torch held at any moment of the call beyond what it held when the
    call began (what the call returns counts: it was allocated during the call).

    CUDA: the caching allocator's own count, torch.cuda.reset_peak_memory_stats(), then
    max_memory_allocated() minus the memory_allocated() at the start. CPU: torch's allocator
    reports each allocation and free (bytes, in order) to the autograd profiler when it runs
    with profile_memory; the legacy profiler (no Kineto: no start-up cost, no trace) collects
    them, and the peak is the largest running sum. torch runs the call on one thread, so every
    report lands on this thread in order. Memory that torch does not allocate (numpy arrays)
    is not seen. `cls` is not used here: Learner.probe names it in its messages.

    Returns {"peak_bytes": int, "value": what the call returned}.
    """
    fn = getattr(mod, attr)

    def move(v):
        return v.detach().to(device) if isinstance(v, torch.Tensor) else v

    args = [move(a) for a in args]
    kwargs = {k: move(v) for k, v in (kwargs or {}).items()}
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        value = fn(*args, **kwargs)
        torch.cuda.synchronize(device)
        return {"peak_bytes": int(torch.cuda.max_memory_allocated(device) - start), "value": value}
    from torch.autograd import _disable_profiler_legacy, _enable_profiler_legacy, profiler_legacy

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    _enable_profiler_legacy(profiler_legacy.profile(profile_memory=True).config())
    try:
        value = fn(*args, **kwargs)
    finally:
        records = _disable_profiler_legacy()
        torch.set_num_threads(threads)
    held = peak = 0
    for thread in records:
        for record in thread:
            if record.kind() == "memory_alloc" and record.device() == -1:  # a CPU allocation (+) or free (-)
                held += record.cpu_memory_usage()
                peak = max(peak, held)
    return {"peak_bytes": int(peak), "value": value}


PROBES.update(peak_memory=peak_memory)
