"""Hostile: allocates far more memory than the grader's limit, in two ways."""
import torch


def sinusoidal_table(max_len, d_model, base=10000.0):
    return torch.ones(6 * 1024**3, dtype=torch.uint8)  # 6 GB at once


class SinusoidalPositionalEncoding:
    def __init__(self, *args, **kwargs):
        chunks = []
        while True:  # grows 256 MB at a time until something stops it
            chunks.append(torch.ones(256 * 1024**2, dtype=torch.uint8))
