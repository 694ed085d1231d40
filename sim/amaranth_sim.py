"""Amaranth-simulation harness for the layer/accelerator: drive sequences, collect h_t and timing."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from amaranth.sim import Simulator

from .streams import Pauses, stream_get, stream_put

__all__ = ["LayerRun", "run_stream_dut", "run_pipeline"]


@dataclass
class LayerRun:
    """Result of :func:`run_stream_dut`.

    Attributes
    ----------
    outputs : list of numpy.ndarray
        Per sequence, the received ``h_t`` codes, shape (T, H).
    lasts : list of numpy.ndarray
        Per sequence, the ``last`` flag of every received beat.
    out_cycles : numpy.ndarray
        Clock cycle of every output handshake, in order.
    """

    outputs: list = field(default_factory=list)
    lasts: list = field(default_factory=list)
    out_cycles: np.ndarray | None = None


def run_stream_dut(dut, sequences, *, idle: float = 0.0, backpressure: float = 0.0, seed: int = 0,
                   vcd: str | None = None, max_cycles: int | None = None, extra=None,
                   out_counts=None, weights=None) -> LayerRun:
    """Send integer sequences through a component with vector ``i_stream`` / ``o_stream`` ports.

    Every sequence is sent back to back, ``last`` on its final step. The producer and consumer
    are separate testbenches; ``idle`` and ``backpressure`` are the probabilities of a pause cycle
    before each input beat / before each output beat is accepted. ``extra``, if given, holds per
    sequence a dict of further payload fields (e.g. ``h0``) sent with every beat of it;
    ``out_counts`` the number of output beats per sequence (default: one per input beat).
    ``weights``, if given, are first sent through the ``w_stream`` port, one code per beat with the
    same random pauses (the run-time loaded weight memories, :func:`~rnnaccel.hdl.memory_plan.weight_image`),
    while the input producer already offers its first beat.
    """
    sequences = [np.asarray(s, dtype=np.int64) for s in sequences]
    result = LayerRun()
    cycles = []
    count = [0]
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def clock_counter(ctx):
        async for _ in ctx.tick():
            count[0] += 1
            if max_cycles is not None and count[0] > max_cycles:
                raise RuntimeError(f"simulation exceeded {max_cycles} cycles: the design hangs")

    async def weight_producer(ctx):
        pauses = Pauses(idle, seed + 2)
        for w in weights:
            await stream_put(ctx, dut.w_stream, int(w), pauses)

    async def producer(ctx):
        pauses = Pauses(idle, seed)
        for i, seq in enumerate(sequences):
            fields = {} if extra is None else {k: _plain(v) for k, v in extra[i].items()}
            for t, x in enumerate(seq):
                await stream_put(ctx, dut.i_stream,
                                 {"data": [int(v) for v in x], "last": int(t == len(seq) - 1)} | fields, pauses)

    async def consumer(ctx):
        pauses = Pauses(backpressure, seed + 1)
        for i, seq in enumerate(sequences):
            hs, ls = [], []
            for _ in range(len(seq) if out_counts is None else out_counts[i]):
                payload = await stream_get(ctx, dut.o_stream, pauses)
                cycles.append(count[0])
                hs.append([int(v) for v in payload.data])
                ls.append(int(payload.last))
            result.outputs.append(np.array(hs, dtype=np.int64))
            result.lasts.append(np.array(ls))

    sim.add_testbench(clock_counter, background=True)
    if weights is not None:
        sim.add_testbench(weight_producer)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    result.out_cycles = np.array(cycles)
    return result


def _plain(v):
    """NumPy arrays (any depth) as nested lists of Python ints, for ``ctx.set``."""
    a = np.asarray(v)
    return int(a) if a.ndim == 0 else [_plain(x) for x in a]


def run_pipeline(dut, beats, out_fields=None, side=None) -> list:
    """Drive a fixed-latency block (``always_ready`` ``i_stream``/``o_stream``) one beat per cycle.

    ``beats`` holds payloads (anything ``ctx.set`` accepts) or None for an idle cycle; the run goes
    on for ``dut.latency + 2`` idle cycles after the last beat. ``side``, if given, holds per cycle
    None or a dict ``{port name: value}`` for other input ports of ``dut`` (e.g. ``load``); a port
    named anywhere in ``side`` is zero in the cycles that do not name it. Returns the valid
    outputs in order: ints, or tuples of the ``out_fields`` of a struct payload.
    """
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    got = []
    side = list(side or [])
    side_ports = sorted({name for s in side if s for name in s})

    async def tb(ctx):
        for t, beat in enumerate(list(beats) + [None] * (dut.latency + 2)):
            extra = side[t] if t < len(side) and side[t] else {}
            for name in side_ports:
                port = getattr(dut, name)
                if name in extra:
                    ctx.set(port, extra[name])
                else:
                    ctx.set(port.as_value() if hasattr(port, "as_value") else port, 0)
            ctx.set(dut.i_stream.valid, beat is not None)
            if beat is not None:
                ctx.set(dut.i_stream.payload, beat)
            await ctx.tick()
            if ctx.get(dut.o_stream.valid):
                p = ctx.get(dut.o_stream.payload)
                got.append(tuple(int(p[f]) for f in out_fields) if out_fields else int(p))

    sim.add_testbench(tb)
    sim.run()
    return got
