"""Seeds for torch generators derived from several integers, so that separate streams never coincide."""
from __future__ import annotations

_MIX = 0x9E3779B97F4A7C15  # the golden-ratio constant of splitmix64


def mix_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every part (splitmix64-style), for seeding torch generators."""
    value = 0
    for part in parts:
        value = (value ^ (int(part) + _MIX + (value << 6) + (value >> 2))) & 0xFFFFFFFFFFFFFFFF
        value = ((value ^ (value >> 31)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return value >> 1
