"""Hostile: leaves a busy thread and a sleeping child process behind, then answers correctly."""
import subprocess
import sys
import threading

import torch



def _spin():
    while True:
        pass


threading.Thread(target=_spin, daemon=False).start()
# the test finds the child by this marker in its command line (learner code can write no pid file)
_child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)  # posgrade-hostile-child"])


def sinusoidal_table(max_len, d_model, base=10000.0):
    pos = torch.arange(max_len, dtype=torch.float32)[:, None]
    inv = base ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    table = torch.empty(max_len, d_model)
    table[:, 0::2] = torch.sin(pos * inv)
    table[:, 1::2] = torch.cos(pos * inv[: d_model // 2])
    return table


class SinusoidalPositionalEncoding(torch.nn.Module):
    def __init__(self, d_model, max_len=2048, base=10000.0):
        super().__init__()
        self.max_len = max_len
        self.register_buffer("table", sinusoidal_table(max_len, d_model, base), persistent=False)

    def forward(self, x, offset=0):
        if offset < 0 or offset + x.shape[-2] > self.max_len:
            raise ValueError("too long")
        return x + self.table[offset : offset + x.shape[-2]].to(x.device, x.dtype)
