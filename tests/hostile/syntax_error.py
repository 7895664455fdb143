"""Hostile: does not parse."""


def sinusoidal_table(max_len, d_model, base=10000.0)
    return None
