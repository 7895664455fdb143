"""Independent correct learned, style 2: vectorised: exp/log frequencies, torch.outer, stacked sin/cos, F.embedding, multinomial starts.

Written from the stub's docstrings alone (not the reference, not the cases) by a helper playing
a learner; graded full marks by tests/test_kit.py. Docstrings stripped."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def position_ids(batch_size, seq_len, past_length=0, device=None):
    if min(batch_size, seq_len, past_length) < 0:
        raise ValueError("negative argument")
    ids = torch.arange(past_length, past_length + seq_len, dtype=torch.long, device=device)
    return ids.unsqueeze(0).expand(batch_size, seq_len)


class LearnedPositionalEmbedding(nn.Module):
    def __init__(self, max_len, d_model, init_std=0.02):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_len, d_model))
        nn.init.normal_(self.weight, mean=0.0, std=init_std)

    def forward(self, x, past_length=0):
        B, L = x.shape[0], x.shape[1]
        if past_length < 0 or past_length + L > self.weight.shape[0]:
            raise ValueError("positions out of range")
        ids = position_ids(B, L, past_length, device=self.weight.device)
        return x + F.embedding(ids, self.weight)
