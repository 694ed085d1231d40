"""cocotb bench of the generated top level ``rnnaccel_top`` (cocotb 2.x; driven by :mod:`rnnaccel.sim.runner`).

Driver -> DUT -> monitor -> in-order scoreboard against the golden model's ``h_codes``:

1. **Check phase.** Every sequence of ``vectors.npz`` is sent back to back, one AXI4-Stream frame
   per sequence (cocotbext-axi ``AxiStreamSource``), with random idle cycles on the input and random
   backpressure on the output (``AxiStreamSink`` with pause generators, seeded). A light passive
   monitor records every output handshake (cycle, ``tdata``, ``tlast``); every ``h_t`` is compared
   bit-exactly with the golden model and ``tlast`` must mark exactly the last step of each frame.
2. **Throughput phase.** Pauses off (input always valid, output always ready), a couple of
   sequences again; the cycles between consecutive output handshakes must all equal the analytic
   ``cycles_per_timestep`` of :mod:`rnnaccel.hdl.perf` (read from ``summary.json``). Its outputs are
   checked too.

Parameters come from environment variables (the runner sets them):

``RNNACCEL_BUILD_DIR``   directory with ``vectors.npz`` and ``summary.json`` (required)
``RNNACCEL_RESULTS``     where to write the results JSON (default ``<build>/results.json``)
``RNNACCEL_SEED``        seed of the pause generators (default 0)
``RNNACCEL_IDLE``        probability of an idle input cycle (default 0.3)
``RNNACCEL_BACKPRESSURE``  probability of ``m_axis_tready`` low (default 0.3)
``RNNACCEL_THROUGHPUT_SEQUENCES``  sequences in the throughput phase (default 2)
``RNNACCEL_SIM``         simulator name for the report (default ``cocotb.SIM_NAME``)
``RNNACCEL_PROGRESS``    file overwritten with a progress line after every received frame (optional)

The Python side only runs when something happens on the streams: the monitor sleeps on
``m_axis_tvalid`` rising while the output is idle, and the clock is the simulator's own (GPI) clock.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, SimTimeoutError, with_timeout
from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from rnnaccel.golden.fixed import QFormat
from rnnaccel.sim.vectors import load_vectors, unpack_beats

CLOCK_NS = 10
#: Mismatch records kept in the results.
FIRST_MISMATCHES = 10
#: Stands for a received element with X/Z bits (outside every data format).
UNKNOWN = 1 << 62


def _env_float(name: str, default: float) -> float:
    v = os.environ.get(name, "")
    return float(v) if v.strip() else default


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name, "")
    return int(v) if v.strip() else default


def _pauses(rng: random.Random, p: float):
    """Endless pause pattern: True (pause) with probability ``p`` per cycle."""
    if p <= 0:
        return itertools.repeat(False)
    r = rng.random
    return (r() < p for _ in itertools.count())


class HandshakeMonitor:
    """Passive recorder of output handshakes: (cycle, tdata, tlast) per beat.

    Runs on every clock edge only while ``m_axis_tvalid`` is high; while it is low it sleeps until
    ``m_axis_tvalid`` rises, so it adds little to the simulation time.
    """

    def __init__(self, dut):
        self.dut = dut
        self.cycles: list[int] = []
        self.data: list[int] = []
        self.last: list[bool] = []

    def __len__(self):
        return len(self.data)

    async def run(self):
        dut = self.dut
        valid, ready, data, last = dut.m_axis_tvalid, dut.m_axis_tready, dut.m_axis_tdata, dut.m_axis_tlast
        clock_edge = RisingEdge(dut.clk)
        valid_rise = RisingEdge(valid)
        read_only = ReadOnly()
        while True:
            await clock_edge
            # values sampled at the edge are those the DUT's registers see at this edge
            if valid.value == 1:
                if ready.value == 1:
                    self.cycles.append(round(get_sim_time("ns") / CLOCK_NS))
                    try:
                        self.data.append(int(data.value))
                    except ValueError:          # X or Z bits on a valid beat: recorded, never equal
                        self.data.append(None)
                    self.last.append(last.value == 1)
            else:
                await read_only
                if valid.value != 1:
                    await valid_rise


class Scoreboard:
    """In-order comparison of received beats with the expected ``h_codes``."""

    def __init__(self, vectors, fmt: QFormat, hidden: int, cell_width: int | None = None):
        self.v = vectors
        self.fmt = fmt
        self.hidden = hidden
        self.cell_width = cell_width
        self.state_mismatches = 0    # sequences whose final states (h_n, c_n) on the last beat differ
        self.seq_of_step = np.repeat(np.arange(vectors.sequences), vectors.out_lengths)
        self.step_in_seq = np.arange(vectors.out_timesteps) - vectors.out_offsets[self.seq_of_step]
        self.mismatches = 0          # timesteps whose h_t differs (or is missing / extra)
        self.element_mismatches = 0
        self.tlast_errors = 0
        self.first: list[dict] = []
        self.max_abs_error_vs_float = 0.0
        self.checked = 0

    def _check_final_states(self, beats, lasts, steps, phase):
        """On the last beat of a sequence, the bits after the output vector are ``h_n`` then ``c_n``."""
        if self.v.hn_codes is None:
            return
        y_bits = self.hidden * self.fmt.width
        hn_shape = self.v.hn_codes.shape[1:]
        hn_bits = int(np.prod(hn_shape)) * self.fmt.width
        for b, last, st in zip(beats, lasts, steps):
            if not last:
                continue
            s = int(self.seq_of_step[st])
            ok = b is not None
            if ok:
                hn = unpack_beats([b >> y_bits], int(np.prod(hn_shape)), self.fmt.width)[0].reshape(hn_shape)
                ok = np.array_equal(hn, self.v.hn_codes[s])
                if ok and self.v.cn_codes is not None:
                    cn_shape = self.v.cn_codes.shape[1:]
                    cn = unpack_beats([b >> (y_bits + hn_bits)], int(np.prod(cn_shape)),
                                      self.cell_width)[0].reshape(cn_shape)
                    ok = np.array_equal(cn, self.v.cn_codes[s])
            if not ok:
                self.state_mismatches += 1
                if len(self.first) < FIRST_MISMATCHES:
                    self.first.append({"phase": phase, "sequence": s, "final_states": "differ"})

    def errors(self, tlast_unit: str = "beat") -> list[str]:
        """The board's verdicts as error lines (none when everything matched); ``tlast_unit`` names
        what a wrong ``tlast`` was counted on."""
        out = []
        if self.mismatches:
            out.append(f"{self.mismatches} output(s) differ from the golden model")
        if self.tlast_errors:
            out.append(f"{self.tlast_errors} {tlast_unit}(s) with wrong tlast")
        if self.state_mismatches:
            out.append(f"{self.state_mismatches} sequence(s) with wrong final states")
        return out

    def check(self, beats: list[int], lasts: list[bool], steps: np.ndarray, phase: str):
        """Compare received ``beats`` with the expected values of global step indices ``steps``."""
        unknown = [b is None for b in beats]
        self._check_final_states(beats, lasts, steps, phase)
        got = unpack_beats([0 if b is None else b for b in beats], self.hidden, self.fmt.width, self.fmt.signed)
        got[np.asarray(unknown, dtype=bool)] = UNKNOWN
        n = min(len(got), len(steps))
        exp = self.v.h_codes[steps[:n]]
        exp_last = self.v.out_last_flags()[steps[:n]]
        diff = got[:n] != exp
        bad_steps = np.flatnonzero(diff.any(axis=1))
        self.mismatches += len(bad_steps)
        self.element_mismatches += int(diff.sum())
        self.checked += n
        for i in bad_steps:
            if len(self.first) >= FIRST_MISMATCHES:
                break
            st = int(steps[i])
            els = np.flatnonzero(diff[i])
            self.first.append({
                "phase": phase, "sequence": int(self.seq_of_step[st]), "step": int(self.step_in_seq[st]),
                "elements": [int(e) for e in els[:8]],
                "got": [("X" if got[i, e] == UNKNOWN else int(got[i, e])) for e in els[:8]],
                "expected": [int(exp[i, e]) for e in els[:8]],
            })
        lasts = np.asarray(lasts[:n], dtype=bool)
        bad_last = np.flatnonzero(lasts != exp_last)
        self.tlast_errors += len(bad_last)
        for i in bad_last[:max(0, FIRST_MISMATCHES - len(self.first))]:
            st = int(steps[i])
            self.first.append({"phase": phase, "sequence": int(self.seq_of_step[st]),
                               "step": int(self.step_in_seq[st]), "tlast": bool(lasts[i]),
                               "expected_tlast": bool(exp_last[i])})
        if len(got) != len(steps):   # missing or extra beats count as mismatching timesteps
            self.mismatches += abs(len(got) - len(steps))
            if len(self.first) < FIRST_MISMATCHES:
                self.first.append({"phase": phase, "beats_received": len(got), "beats_expected": len(steps)})
        known = got[:n] != UNKNOWN
        if self.v.h_float is not None and known.any():
            err = np.abs(got[:n] * self.fmt.lsb - self.v.h_float[steps[:n]])[known]
            self.max_abs_error_vs_float = max(self.max_abs_error_vs_float, float(err.max()))


def _frames(vectors, x_fmt: QFormat, byte_lanes: int, seqs, cell_width: int) -> list[AxiStreamFrame]:
    """One frame per sequence; each beat is ``byte_lanes`` little-endian bytes of the packed input
    (``x_t``, then the sequence's initial states if the model takes them)."""
    frames = []
    for s in seqs:
        buf = bytearray()
        for v in vectors.input_rows(s, x_fmt.width, cell_width):
            buf += v.to_bytes(byte_lanes, "little")
        frames.append(AxiStreamFrame(bytes(buf)))
    return frames


async def _receive(sink, count: int, budget_cycles: list[int], progress: Path | None = None,
                   phase: str = "") -> tuple[list[int], str | None]:
    """Receive ``count`` frames; returns their lengths in bytes and an error text on timeout.

    After each frame, ``progress`` (if given) is overwritten with one line for the runner to show.
    """
    lengths = []
    for i in range(count):
        try:
            frame = await with_timeout(sink.recv(), budget_cycles[i] * CLOCK_NS, "ns")
        except SimTimeoutError:
            return lengths, (f"timeout: frame {i} of {count} not complete after {budget_cycles[i]} cycles "
                             f"(tlast missing or the design stalled)")
        lengths.append(len(frame.tdata))
        if progress is not None:
            progress.write_text(f"{phase}: {i + 1}/{count} frames\n")
    return lengths, None


def bench_params() -> dict:
    """The parameters every bench reads from the environment (the runner's
    :func:`rnnaccel.sim.runner.bench_environment`): ``build``, ``results_path``, ``seed``, ``idle``,
    ``backpressure``, ``n_tp`` (throughput-phase sequences), ``simulator``."""
    build = Path(os.environ["RNNACCEL_BUILD_DIR"])
    return {"build": build,
            "results_path": Path(os.environ.get("RNNACCEL_RESULTS") or build / "results.json"),
            "seed": _env_int("RNNACCEL_SEED", 0),
            "idle": _env_float("RNNACCEL_IDLE", 0.3),
            "backpressure": _env_float("RNNACCEL_BACKPRESSURE", 0.3),
            "n_tp": _env_int("RNNACCEL_THROUGHPUT_SEQUENCES", 2),
            "simulator": os.environ.get("RNNACCEL_SIM") or cocotb.SIM_NAME}


async def start_dut(dut, inputs, while_in_reset=None) -> HandshakeMonitor:
    """Start ``clk``, hold ``rst`` for 3 cycles with the ``inputs`` (port names) at 0, run
    ``while_in_reset()`` (awaited) if given, release ``rst``, wait 2 cycles, and start a
    :class:`HandshakeMonitor` on ``m_axis`` (returned)."""
    impl = "gpi" if "icarus" in cocotb.SIM_NAME.lower() else None
    Clock(dut.clk, CLOCK_NS, unit="ns", **({"impl": impl} if impl else {})).start()
    dut.rst.value = 1
    for name in inputs:
        getattr(dut, name).value = 0
    await ClockCycles(dut.clk, 3)
    if while_in_reset is not None:
        await while_in_reset()
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)
    monitor = HandshakeMonitor(dut)
    cocotb.start_soon(monitor.run())
    return monitor


@cocotb.test()
async def test_top(dut):
    """Bit-exact check of every h_t, frame boundaries, and steady-state cycles per timestep."""
    wall0 = time.monotonic()
    prm = bench_params()
    build, results_path, seed, simulator = prm["build"], prm["results_path"], prm["seed"], prm["simulator"]
    idle, backpressure, n_tp = prm["idle"], prm["backpressure"], prm["n_tp"]

    summary = json.loads((build / "summary.json").read_text())
    m = summary["model"]
    X, Y = int(m["input_size"]), int(m.get("output_size", m["hidden_size"]))
    fmt = QFormat.parse(m["formats"]["data"])
    cell_width = QFormat.parse(m["formats"]["cell"]).width
    cpt_model = summary["perf"].get("cycles_per_timestep")      # None: bidirectional (whole sequences)
    vectors = load_vectors(build)
    S = vectors.sequences
    seq_cycles = (vectors.seq_cycles if vectors.seq_cycles is not None
                  else np.asarray(vectors.lengths) * int(cpt_model))

    in_width, out_width = len(dut.s_axis_tdata), len(dut.m_axis_tdata)
    assert in_width == int(summary["axis"]["s_axis_tdata_width"]), \
        f"s_axis_tdata is {in_width} bits; summary.json says {summary['axis']['s_axis_tdata_width']}"
    assert in_width >= X * fmt.width and in_width % 8 == 0, \
        f"s_axis_tdata is {in_width} bits; expected X*W = {X}*{fmt.width} padded to whole bytes"
    assert out_width >= Y * fmt.width and out_width % 8 == 0, \
        f"m_axis_tdata is {out_width} bits; expected Y*W = {Y}*{fmt.width} padded to whole bytes"

    inputs = ["s_axis_tvalid", "s_axis_tlast", "s_axis_tdata", "m_axis_tready"]
    if summary["axis"].get("s_axis_weights_tdata_width"):
        inputs += ["s_axis_weights_tvalid", "s_axis_weights_tdata"]
    axis = {}

    async def make_axis():
        for prefix in ("s_axis", "m_axis"):     # cocotbext-axi is chatty at INFO level
            logging.getLogger(f"cocotb.{dut._name}.{prefix}").setLevel(logging.WARNING)
        # created once the ports have defined values (their loops start at once and sample them)
        axis["source"] = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk)
        axis["sink"] = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk)
        await ClockCycles(dut.clk, 3)

    monitor = await start_dut(dut, inputs, make_axis)
    source, sink = axis["source"], axis["sink"]
    board = Scoreboard(vectors, fmt, Y, cell_width)
    errors: list[str] = []

    # -- phase 0 (designs with run-time loaded weights): the weight image through s_axis_weights ---
    load_cycles = None
    w_width = summary["axis"].get("s_axis_weights_tdata_width")
    if w_width:
        assert vectors.w_image is not None, "the design has a weight port but vectors.npz has no w_image"
        if int(dut.s_axis_tready.value):
            errors.append("s_axis_tready is high before the weights are loaded")
        logging.getLogger(f"cocotb.{dut._name}.s_axis_weights").setLevel(logging.WARNING)
        wsource = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_weights"), dut.clk)
        wsource.set_pause_generator(_pauses(random.Random(seed + 17), idle))
        nb = int(w_width) // 8
        t_load = get_sim_time("ns")
        await wsource.send(AxiStreamFrame(b"".join(int(c).to_bytes(nb, "little", signed=True)
                                                   for c in vectors.w_image)))
        await wsource.wait()
        load_cycles = round((get_sim_time("ns") - t_load) / CLOCK_NS)
        wsource.clear_pause_generator()

    # -- phase 1: all sequences back to back, idles and backpressure -------------------------------
    rng = random.Random(seed)
    source.set_pause_generator(_pauses(random.Random(rng.random()), idle))
    sink.set_pause_generator(_pauses(random.Random(rng.random()), backpressure))
    slow = 1.0 / max(1e-3, (1 - idle) * (1 - backpressure))
    budgets = [int(4 * slow * int(c) * (1 + 1 / max(1, int(T)))) + 500 for c, T in zip(seq_cycles, vectors.lengths)]
    t0 = get_sim_time("ns")
    for f in _frames(vectors, fmt, in_width // 8, range(S), cell_width):
        source.send_nowait(f)
    progress = Path(os.environ["RNNACCEL_PROGRESS"]) if os.environ.get("RNNACCEL_PROGRESS") else None
    frame_bytes, err = await _receive(sink, S, budgets, progress, "check phase")
    if err:
        errors.append(err)
    check_cycles = round((get_sim_time("ns") - t0) / CLOCK_NS)
    await ClockCycles(dut.clk, 2 * int(max(seq_cycles) / max(1, min(vectors.lengths))) + 10)   # extra beats show here
    n1 = len(monitor)
    board.check(monitor.data[:n1], monitor.last[:n1], np.arange(vectors.out_timesteps), "check")
    beat_bytes = out_width // 8
    bad_frames = [{"sequence": i, "beats": b // beat_bytes, "expected": int(vectors.out_lengths[i])}
                  for i, b in enumerate(frame_bytes) if b // beat_bytes != vectors.out_lengths[i]]
    if bad_frames:
        errors.append(f"{len(bad_frames)} frame(s) with tlast at the wrong step, first {bad_frames[0]}")

    # -- phase 2: throughput, pauses off -----------------------------------------------------------
    source.clear_pause_generator()
    sink.clear_pause_generator()
    source.pause = False
    sink.pause = False
    await ClockCycles(dut.clk, 2)
    # Copies of sequence 0 back to back: every interval between outputs of a frame is the model's
    # cycles per timestep (unidirectional, every step streamed), and consecutive frames end
    # sequence_cycles(T) apart (all models).
    tp_seqs = [0] * (n_tp if S else 0)
    intervals: list[int] = []
    within: list[int] = []
    periods: list[int] = []
    period_model = int(seq_cycles[0]) if S else None
    if tp_seqs and not errors:
        start = len(monitor)
        for f in _frames(vectors, fmt, in_width // 8, tp_seqs, cell_width):
            source.send_nowait(f)
        _, err = await _receive(sink, len(tp_seqs), [int(2 * int(seq_cycles[0]) * (1 + 1 / int(vectors.lengths[0])))
                                                     + 500 for _ in tp_seqs], progress, "throughput phase")
        if err:
            errors.append("throughput phase: " + err)
        await ClockCycles(dut.clk, 2)
        sl = vectors.out_sequence(0)
        steps = np.concatenate([np.arange(sl.start, sl.stop) for _ in tp_seqs])
        board.check(monitor.data[start:], monitor.last[start:], steps, "throughput")
        cyc = monitor.cycles[start:]
        lasts = monitor.last[start:]
        ends = [c for c, last in zip(cyc, lasts) if last]
        periods = [b - a for a, b in zip(ends, ends[1:])]
        for i in range(1, len(cyc)):
            d = cyc[i] - cyc[i - 1]
            intervals.append(d)
            if not lasts[i - 1]:
                within.append(d)

    def stats(xs):
        return {"min": min(xs), "max": max(xs), "mean": sum(xs) / len(xs), "samples": len(xs)} if xs else None

    cpt = stats(intervals) if cpt_model is not None and m.get("outputs", "sequence") == "sequence" else None
    per = stats(periods)
    if per is None and not errors and len(tp_seqs) >= 2:
        errors.append("throughput phase produced fewer than two frames")
    elif per and not per["min"] == per["max"] == period_model:
        errors.append(f"cycles per sequence of {int(vectors.lengths[0])} steps measured {per['min']}..{per['max']}, "
                      f"model {period_model}")
    if cpt and not cpt["min"] == cpt["max"] == cpt_model:
        errors.append(f"cycles per timestep measured {cpt['min']}..{cpt['max']}, model {cpt_model}")
    errors += board.errors("beat")

    results = {
        "simulator": simulator,
        "passed": not errors,
        "errors": errors,
        "sequences": S,
        "timesteps": vectors.timesteps,
        "checked_timesteps": board.checked,
        "mismatches": board.mismatches,
        "element_mismatches": board.element_mismatches,
        "tlast_errors": board.tlast_errors,
        "final_state_mismatches": board.state_mismatches if vectors.hn_codes is not None else None,
        "frame_errors": len(bad_frames) + (S - len(frame_bytes)),
        "first_mismatches": board.first,
        "cycles_per_timestep": (cpt["min"] if cpt and cpt["min"] == cpt["max"] else (cpt["mean"] if cpt else None)),
        "cycles_per_timestep_min": cpt["min"] if cpt else None,
        "cycles_per_timestep_max": cpt["max"] if cpt else None,
        "cycles_per_timestep_model": cpt_model,
        "cycles_per_timestep_within_frames": stats(within),
        "cycles_per_sequence": per["min"] if per and per["min"] == per["max"] else (per["mean"] if per else None),
        "cycles_per_sequence_model": period_model,
        "throughput_steps": int(vectors.lengths[0]) if S else None,
        "outputs": vectors.out_timesteps,
        "throughput_sequences": len(tp_seqs),
        "max_abs_error_vs_float": board.max_abs_error_vs_float if vectors.h_float is not None else None,
        "check_phase_cycles": check_cycles,
        "sim_cycles": round(get_sim_time("ns") / CLOCK_NS),
        "sim_wall_s": round(time.monotonic() - wall0, 3),
        "seed": seed,
        "idle": idle,
        "backpressure": backpressure,
        "s_axis_tdata_width": in_width,
        "weight_image_codes": None if vectors.w_image is None else int(len(vectors.w_image)),
        "weight_load_cycles": load_cycles,
        "m_axis_tdata_width": out_width,
    }
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    dut._log.info("results: %s", results_path)

    assert not bad_frames and results["frame_errors"] == 0, errors
    assert board.mismatches == 0 and board.tlast_errors == 0, errors
    assert not errors, errors
