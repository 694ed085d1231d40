"""Amaranth-simulation stream drivers shared by the block and layer tests.

``stream_put`` and ``stream_get`` are async testbench helpers (Amaranth 0.5 ``ctx`` API) for
``amaranth.lib.stream`` interfaces, with optional random idle cycles / backpressure.
"""

from __future__ import annotations

import random

__all__ = ["stream_put", "stream_get", "stream_collect", "Pauses"]


class Pauses:
    """Random pause generator: ``next()`` is true with probability ``p`` (seeded)."""

    def __init__(self, p: float = 0.0, seed: int = 0):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"pause probability must be in [0, 1), got {p}")
        self.p = p
        self.rng = random.Random(seed)

    def __call__(self) -> bool:
        return self.p > 0 and self.rng.random() < self.p


async def stream_put(ctx, stream, payload, pauses: Pauses | None = None):
    """Send one beat: optional idle cycles first, then hold ``valid`` until ``ready``."""
    while pauses is not None and pauses():
        await ctx.tick()
    ctx.set(stream.valid, 1)
    ctx.set(stream.payload, payload)
    await ctx.tick().until(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, pauses: Pauses | None = None):
    """Receive one beat, with optional backpressure cycles before ``ready`` is raised; returns the payload."""
    while pauses is not None and pauses():
        await ctx.tick()
    ctx.set(stream.ready, 1)
    payload, = await ctx.tick().sample(stream.payload).until(stream.valid)
    ctx.set(stream.ready, 0)
    return payload


async def stream_collect(ctx, stream, count: int, pauses: Pauses | None = None, on_beat=None):
    """Receive ``count`` beats; ``on_beat(index, payload, ctx)`` is called for each."""
    out = []
    for i in range(count):
        payload = await stream_get(ctx, stream, pauses)
        if on_beat is not None:
            on_beat(i, payload, ctx)
        out.append(payload)
    return out
