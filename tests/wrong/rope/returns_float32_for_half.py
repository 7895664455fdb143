"""Mistake: the result is not cast back: a bfloat16/float16 input comes out as float32.
Caught by: test_keeps_dtype

rope — rotary position embedding (Su et al. 2021, RoFormer).

RoPE encodes position m by rotating q and k (never v) after the head split. The head
width d (even) is cut into d/2 two-dimensional pairs; pair i turns by the angle m * theta_i:

    theta_i = base^(-2i / d),  i = 0 .. d/2 - 1      (base = 10000; 500000 in LLaMA 3)
    [x'_a]   [cos m*theta_i   -sin m*theta_i] [x_a]
    [x'_b] = [sin m*theta_i    cos m*theta_i] [x_b]

Because rotations compose, <R_m q, R_n k> depends only on m - n: the attention score sees
the relative position although each vector only carried its absolute one. Seen as complex
numbers z = x_a + i x_b, the rotation is z * e^(i m theta_i) (Meta's precompute_freqs_cis).

Worked example, d = 2 (one pair, theta_0 = 1), x = [1, 0] at position m = 1:
    R_1 x = [cos 1, sin 1] = [0.540, 0.841]; at m = 0 nothing moves (R_0 = identity).
With d = 4, base = 10000 the angles are m * [1, 0.01]; for x = [1, 0, 1, 0] at m = 1:
    interleaved=True,  pairs (x0, x1), (x2, x3): [cos 1, sin 1, cos .01, sin .01]
                                                = [0.540, 0.841, 1.000, 0.010]
    interleaved=False, pairs (x0, x2), (x1, x3): (1, 1) turns by 1 rad, (0, 0) stays
                                                = [cos 1 - sin 1, 0, sin 1 + cos 1, 0]
                                                = [-0.301, 0, 1.382, 0]
Same x, same angles, different outputs: the two layouts are not interchangeable.

Who uses what (the pairing is the only difference):
  * interleaved, pairs (2i, 2i+1): Meta LLaMA (`precompute_freqs_cis`, `apply_rotary_emb`),
    GPT-J (`rotate_every_two`), torchtune, the RoFormer paper.
  * half-split, pairs (i, i + d/2): GPT-NeoX and Hugging Face Llama/Mistral/Qwen
    (`rotate_half`, cos/sin built with cat(freqs, freqs)). HF's conversion script permutes
    the rows of Meta's wq/wk so that both give the same model.
Angles are computed in float32 by all of them (positions.float() * inv_freq).

Pitfalls:
  * pairing (2i, 2i+1) when the weights expect (i, i + d/2), or the reverse; cat(freqs, freqs)
    goes with rotate_half, repeat_interleave with rotate_every_two;
  * rotating by -m*theta (the sin term on the wrong component);
  * theta_i = base^(-i/d) instead of base^(-2i/d);
  * ignoring the position offset of a KV cache (new tokens start at past_length, not 0);
  * building angles, cos or sin in bfloat16: near position 1000 a bf16 angle is a multiple of 4 rad;
  * rotating v, or returning float32 when the input was bfloat16.
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
    y_a = x_a * cos - x_b * sin  # [..., L, d/2]
    y_b = x_a * sin + x_b * cos  # [..., L, d/2]
    if interleaved:
        out = torch.stack((y_a, y_b), dim=-1).flatten(-2)  # [..., L, d/2, 2] -> a, b, a, b, ...
    else:
        out = torch.cat((y_a, y_b), dim=-1)  # [..., L, d]: all a's, then all b's
    return out
