"""Known mistakes of the learned exercise (see posgrade.diagnosis.mistakes for how each is detected).

Value mistakes (position_ids, forward, gradients) are edits of the reference, replayed on the
failed case's calls. The module's structure and its random initialisation are seen in what the
module probe reports (its facts, its initial state_dict, its gradients), whatever RNG calls the
learner made, so those mistakes are predicates on the probe results.
"""

import torch

from posgrade.diagnosis.mistakes import Mistake


def _module_probes(calls):
    """(probe kwargs, probe result) of each module probe that ran without an error."""
    return [(c.kwargs, c.value) for c in calls
            if c.op == "probe" and c.name == "module" and not c.error and isinstance(c.value, dict)]


def _facts(calls):
    return [v["facts"] for _, v in _module_probes(calls) if isinstance(v.get("facts"), dict)]


def _weight_is_buffer(calls):
    """After __init__, `weight` is a buffer and no parameter."""
    return any("weight" in (f.get("buffers") or {}) and "weight" not in (f.get("parameters") or {})
               for f in _facts(calls))


def _nothing_registered(calls):
    """After __init__ the module has no parameter and no buffer at all, yet its forward returned a
    tensor of x's shape: the table is made in forward (or kept as a plain attribute)."""
    for kwargs, value in _module_probes(calls):
        facts, out = value.get("facts") or {}, value.get("output")
        inputs = kwargs.get("inputs") or ()
        if (facts.get("parameters") == {} and facts.get("buffers") == {} and inputs
                and isinstance(out, torch.Tensor) and isinstance(inputs[0], torch.Tensor)
                and out.shape == inputs[0].shape):
            return True
    return False


def _weight(value, key):
    w = (value.get(key) or {}).get("weight")
    return w.detach().cpu().double() if isinstance(w, torch.Tensor) and w.dim() == 2 else None


def _padding_row(calls):
    """Row 0 of the initial weight is exactly zero while the other rows are not, or position 0 was
    used in a forward and got exactly no gradient while the other used positions got theirs."""
    for kwargs, value in _module_probes(calls):
        w = _weight(value, "state_dict")
        if w is not None and w.shape[0] >= 2 and bool((w[0] == 0).all()) and bool((w[1:] != 0).any(dim=1).all()):
            return True
        g = _weight(value, "param_grads")
        inputs = kwargs.get("inputs") or ()
        past = (kwargs.get("forward_kwargs") or {}).get("past_length", 0)
        if g is None or past != 0 or not inputs or not isinstance(inputs[0], torch.Tensor):
            continue
        used = inputs[0].shape[-2]
        # rows 1..L-1 trained and row 0 not; and no row past L-1 trained either, or the positions are
        # shifted (position_ids + 1 trains rows 1..L), which is another story than padding
        if 2 <= used <= g.shape[0] and bool((g[0] == 0).all()) and bool((g[1:used] != 0).any(dim=1).all()) \
                and bool((g[used:] == 0).all()):
            return True
    return False


def _std_one(calls):
    """An initial weight of many draws asked for with init_std far from 1 is N(0, 1): mean about 0,
    standard deviation within 5% of 1 and a normal's kurtosis (so not merely some noise of scale 1)."""
    for kwargs, value in _module_probes(calls):
        std = (kwargs.get("kwargs") or {}).get("init_std")
        w = _weight(value, "state_dict")
        if not isinstance(std, (int, float)) or abs(std - 1) < 0.1 or w is None or w.numel() < 1000:
            continue
        w = w.flatten()
        mean, sd = float(w.mean()), float(w.std())
        kurtosis = float(((w - mean) ** 4).mean()) / sd**4
        if abs(mean) < 0.05 and abs(sd - 1) < 0.05 and abs(kurtosis - 3) < 0.3:
            return True
    return False


MISTAKES = [
    Mistake(
        "params_in_forward", "table made in forward",
        "`weight` should be an nn.Parameter created in __init__; after your __init__ the module has no "
        "parameter at all, so an optimiser built from model.parameters() never trains the table",
        "In __init__: self.weight = nn.Parameter(torch.empty(max_len, d_model)) and initialise it there; "
        "forward only reads it.",
        matches=_nothing_registered,
    ),
    Mistake(
        "weight_is_buffer", "table is a buffer",
        "`weight` should be a trainable nn.Parameter; yours is registered as a buffer, so it gets no "
        "gradient and is never trained",
        "self.weight = nn.Parameter(torch.empty(max_len, d_model)), not self.register_buffer(...).",
        matches=_weight_is_buffer,
    ),
    Mistake(
        "padding_row_zero", "position 0 treated as padding",
        "position 0 is a real position: its row should start from N(0, init_std) and be trained; yours "
        "is zero or gets no gradient, as with padding_idx=0",
        "Drop padding_idx (and any zeroing of row 0): positions are not token ids with a padding token.",
        matches=_padding_row,
    ),
    Mistake(
        "default_init_std", "init_std ignored (N(0, 1) init)",
        "weight should start from N(0, init_std); yours starts from N(0, 1), the default of "
        "nn.init.normal_ and nn.Embedding, whatever init_std is",
        "nn.init.normal_(self.weight, mean=0.0, std=init_std).",
        matches=_std_one,
    ),
    Mistake(
        "ignores_past_length", "position_ids ignores past_length",
        "position_ids should be past_length + arange(L) in every row; yours always starts at 0, so with "
        "a KV cache every new token gets the positions of the first ones",
        "torch.arange(past_length, past_length + seq_len): the new tokens continue after the cached ones.",
        edits=(("torch.arange(past_length, past_length + seq_len, dtype=torch.long, device=device)",
                "torch.arange(0, seq_len, dtype=torch.long, device=device)"),),
    ),
    Mistake(
        "past_length_off_by_one", "positions start one too late",
        "the first new token's position should be past_length (positions count from 0); yours is "
        "past_length + 1",
        "With past_length tokens cached, they hold positions 0 .. past_length - 1, so the next is "
        "past_length: arange(past_length, past_length + seq_len).",
        edits=(("torch.arange(past_length, past_length + seq_len, dtype=torch.long, device=device)",
                "torch.arange(past_length + 1, past_length + seq_len + 1, dtype=torch.long, device=device)"),),
    ),
    Mistake(
        "position_ids_one_row", "one row of positions, not one per sequence",
        "position_ids should be a [batch_size, seq_len] tensor with a row per sequence; yours is "
        "[1, seq_len] (Hugging Face's unsqueeze(0), which relies on broadcasting)",
        "Repeat the row for the batch: pos.unsqueeze(0).expand(batch_size, seq_len) (clone it for a real "
        "tensor).",
        edits=(("return pos.unsqueeze(0).expand(batch_size, seq_len).clone()", "return pos.unsqueeze(0)"),),
    ),
    Mistake(
        "forward_ignores_past_length", "forward ignores past_length",
        "forward(x, past_length) should add rows past_length .. past_length + L - 1; yours always adds "
        "rows 0 .. L - 1",
        "Slice with the offset: self.weight[past_length : past_length + L].",
        edits=(("return x + self.weight[past_length : past_length + seq_len]",
                "return x + self.weight[:seq_len]"),),
    ),
    Mistake(
        "returns_embedding_only", "x not added",
        "forward should return x + weight[past_length : past_length + L]; yours returns the position "
        "vectors alone, dropping the tokens",
        "Add the slice to x: return x + self.weight[past_length : past_length + L] (it broadcasts over B).",
        edits=(("return x + self.weight[past_length : past_length + seq_len]",
                "return self.weight[past_length : past_length + seq_len].expand(x.shape)"),),
    ),
    Mistake(
        "scales_x_by_sqrt_d", "x scaled by sqrt(d_model)",
        "forward should return x + weight[...] unchanged otherwise; yours multiplies x by sqrt(d_model) "
        "first, the token-embedding scaling of Vaswani et al., which does not belong to the position "
        "module",
        "Return x + self.weight[past_length : past_length + L]; scale token embeddings (if at all) where "
        "they are looked up.",
        edits=(("return x + self.weight[past_length : past_length + seq_len]",
                "return x * x.shape[-1] ** 0.5 + self.weight[past_length : past_length + seq_len]"),),
    ),
    Mistake(
        "detached_weight", "weight cut out of autograd",
        "gradients should reach `weight`; yours reads it through .data (or .detach()), so forward is "
        "right but weight never gets a gradient and is never trained",
        "Use self.weight directly in forward: x + self.weight[past_length : past_length + L].",
        edits=(("return x + self.weight[past_length : past_length + seq_len]",
                "return x + self.weight.data[past_length : past_length + seq_len]"),),
    ),
    Mistake(
        "forward_shifted_by_one", "forward adds the rows one position later",
        "forward(x, past_length) should add rows past_length .. past_length + L - 1; yours adds rows "
        "past_length + 1 .. past_length + L (positions counted from 1, or position_ids + 1)",
        "Positions count from 0: self.weight[past_length : past_length + L].",
        edits=(("return x + self.weight[past_length : past_length + seq_len]",
                "return x + self.weight[past_length + 1 : past_length + seq_len + 1]"),),
    ),
    Mistake(
        "zero_init", "table starts at zero",
        "weight should start from N(0, init_std); yours starts all zeros, so forward returns x unchanged "
        "until training moves it",
        "nn.init.normal_(self.weight, mean=0.0, std=init_std) in __init__ (torch.empty holds garbage, "
        "torch.zeros holds no signal).",
        edits=(("nn.init.normal_(self.weight, mean=0.0, std=init_std)", "nn.init.zeros_(self.weight)"),),
    ),
    Mistake(
        "batch_size_hardcoded", "batch size hard-coded",
        "position_ids should have one row per sequence of the batch_size asked for; yours always has the "
        "same fixed number of rows",
        "Use the batch_size argument: pos.unsqueeze(0).expand(batch_size, seq_len).clone().",
        edits=(("return pos.unsqueeze(0).expand(batch_size, seq_len).clone()",
                "return pos.unsqueeze(0).expand(2, seq_len).clone()"),),
    ),
]
