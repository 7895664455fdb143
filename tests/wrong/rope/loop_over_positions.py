"""Mistake: apply_rope rotates one position at a time in a Python loop instead of broadcasting cos and sin.
Caught by: test_efficiency

A real wrong implementation for posgrade's own tests: correct values, far too slow.
"""

import torch


def rope_angles(positions, head_dim, base=10000.0, dtype=torch.float32):
    """cos and sin of the rotation angle of every (position, pair).

    Args:
        positions: 1-D Tensor [L] of positions (integers, or floats for scaled positions),
            any device.
        head_dim: int d, even and >= 2.
        base: float > 0, the base of the frequencies (10000; 500000 for LLaMA 3).
        dtype: the float dtype to compute in (float32 by default, as HF and Meta do;
            apply_rope asks for float64 when its input is float64).

    Returns:
        (cos, sin), each a Tensor [L, d // 2] of `dtype` on positions' device, with
        angle[m, i] = positions[m] * theta_i and theta_i = 1 / base^(2i / d), computed as
        1.0 / base ** (arange(0, d, 2) / d) like Hugging Face and Meta.

    Raises:
        ValueError: if positions is not 1-D, head_dim is odd or < 2, or base <= 0.
    """
    positions = torch.as_tensor(positions)
    if positions.dim() != 1:
        raise ValueError(f"positions must be 1-D [L], got shape {list(positions.shape)}")
    if head_dim < 2 or head_dim % 2 != 0:
        raise ValueError(f"head_dim must be even and >= 2 (it is cut into pairs), got {head_dim}")
    if base <= 0:
        raise ValueError(f"base must be > 0, got {base}")
    two_i = torch.arange(0, head_dim, 2, dtype=dtype, device=positions.device)  # [d/2] = 0, 2, 4, ...
    inv_freq = 1.0 / (base ** (two_i / head_dim))  # theta_i, same expression as HF and Meta
    angle = positions.to(dtype)[:, None] * inv_freq[None, :]  # [L, d/2]
    return torch.cos(angle), torch.sin(angle)


def precompute_freqs_cis(head_dim, max_len, base=10000.0, device=None):
    """Meta LLaMA's table of unit complex numbers e^(i * m * theta_i).

    Args:
        head_dim: int d, even and >= 2.
        max_len: int >= 0, the number of positions (rows), m = 0 .. max_len - 1.
        base: float > 0, as in rope_angles.
        device: where to create the table (None = the CPU).

    Returns:
        complex64 Tensor [max_len, d // 2] with freqs_cis[m, i] = cos(m theta_i) + i sin(m theta_i),
        the same angles as rope_angles(arange(max_len), d, base).

    Raises:
        ValueError: if max_len < 0, head_dim is odd or < 2, or base <= 0.
    """
    if max_len < 0:
        raise ValueError(f"max_len must be >= 0, got {max_len}")
    cos, sin = rope_angles(torch.arange(max_len, device=device), head_dim, base)  # [max_len, d/2] each
    return torch.complex(cos, sin)  # = torch.polar(1, angle), as Meta builds it


def apply_rope(x, positions=None, base=10000.0, interleaved=True):
    """Rotate every pair of x's last dimension by its position's angle.

    Args:
        x: float Tensor [..., L, d] (e.g. q or k as [B, H, L, d]), d even; any float dtype,
            any device.
        positions: None or 1-D integer Tensor [L], the absolute position of each of the L rows,
            shared by every leading index; None means arange(L). With a KV cache pass
            past_length + arange(L).
        base: float > 0, as in rope_angles.
        interleaved: True rotates pairs (x[2i], x[2i+1]) (Meta LLaMA, GPT-J);
            False rotates pairs (x[i], x[i + d/2]) (GPT-NeoX, Hugging Face rotate_half).

    Returns:
        A new Tensor like x (same shape, dtype, device): for each pair (a, b) of row m,
        (a cos - b sin, a sin + b cos) with angle positions[m] * theta_i.
        float16/bfloat16/float32 inputs are computed in float32 (angles included) and cast
        back once at the end; float64 inputs are computed in float64. x is not modified.

    Raises:
        ValueError: if x is not a floating-point tensor with at least 2 dims, d is odd,
            or positions is not 1-D of length L.
    """
    if not x.is_floating_point() or x.dim() < 2:
        raise ValueError(f"x must be a float Tensor [..., L, d], got {x.dtype} of shape {list(x.shape)}")
    seq_len, d = x.shape[-2], x.shape[-1]
    if d < 2 or d % 2 != 0:
        raise ValueError(f"the last dim of x (head width d) must be even and >= 2, got {d}")
    if positions is None:
        positions = torch.arange(seq_len, device=x.device)
    else:
        positions = torch.as_tensor(positions, device=x.device)
        if positions.dim() != 1 or positions.shape[0] != seq_len:
            raise ValueError(f"positions must be 1-D of length L = {seq_len}, got {list(positions.shape)}")

    # half precision cannot hold an angle (bf16 has 8 bits of mantissa): work in float32,
    # or float64 when the caller asked for it
    compute_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    cos, sin = rope_angles(positions, d, base, dtype=compute_dtype)  # [L, d/2], broadcast over [...]
    xf = x.to(compute_dtype)
    if interleaved:
        x_a, x_b = xf[..., 0::2], xf[..., 1::2]  # pair i = (x[2i], x[2i+1])
    else:
        x_a, x_b = xf[..., : d // 2], xf[..., d // 2 :]  # pair i = (x[i], x[i + d/2])
    y_a, y_b = torch.empty_like(x_a), torch.empty_like(x_b)
    for m in range(seq_len):  # one position at a time
        y_a[..., m, :] = x_a[..., m, :] * cos[m] - x_b[..., m, :] * sin[m]
        y_b[..., m, :] = x_a[..., m, :] * sin[m] + x_b[..., m, :] * cos[m]
    if interleaved:
        out = torch.stack((y_a, y_b), dim=-1).flatten(-2)  # [..., L, d/2, 2] -> a, b, a, b, ...
    else:
        out = torch.cat((y_a, y_b), dim=-1)  # [..., L, d]: all a's, then all b's
    return out.to(x.dtype)
