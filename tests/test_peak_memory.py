"""The peak_memory probe (posgrade.kit.probes) that test_memory of the exercise flash relies on:
it counts what torch allocates during one call, at its peak, not what is left at the end."""

import types

import torch

from posgrade.kit import probes

MB = 2**20


def _module(fn):
    return types.SimpleNamespace(fn=fn)


def test_counts_the_result():
    x = torch.zeros(1024, 1024)  # 4 MB, allocated before the call: not counted
    run = probes.peak_memory(_module(torch.exp), attr="fn", args=[x])
    assert run["peak_bytes"] == 4 * MB
    assert torch.equal(run["value"], torch.ones(1024, 1024))


def test_peak_of_temporaries_freed_before_the_end():
    def two_at_once(x):
        a = x * 2  # 4 MB
        b = a + 1  # 4 MB more: 8 MB held here
        del a
        return b.sum()  # a scalar is all that is left

    def one_at_a_time(x):
        total = x.new_zeros(())
        for _ in range(3):
            total = total + (x * 2).sum()  # each 4 MB temporary is freed before the next
        return total

    x = torch.randn(1024, 1024)
    both = probes.peak_memory(_module(two_at_once), attr="fn", args=[x])["peak_bytes"]
    single = probes.peak_memory(_module(one_at_a_time), attr="fn", args=[x])["peak_bytes"]
    assert 8 * MB <= both < 8 * MB + 4096
    assert 4 * MB <= single < 4 * MB + 4096


def test_thread_count_restored():
    threads = torch.get_num_threads()
    probes.peak_memory(_module(torch.exp), attr="fn", args=[torch.zeros(8)])
    assert torch.get_num_threads() == threads
