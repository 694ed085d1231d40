"""cocotb bench of the byte-serial top (:class:`~rnnaccel.hdl.wrapper.SerialisedTop`), cocotb 2.x.

Driven by :func:`rnnaccel.sim.gatelevel.run_gatelevel` on a synthesised netlist whose top is the
serial wrapper (iCE40 UP5K: 8-bit ``s_axis``/``m_axis`` with ``tlast``). The wire format is the
wrapper's (:func:`~rnnaccel.hdl.wrapper.pack_vector`): every input row of ``vectors.npz`` (``x_t``,
then the initial states if the model takes them) packed as the wide top packs ``tdata``, sent in
``in_beats`` beats least significant first; ``tlast`` on the final beat of a sequence's final row.
With run-time loaded weights the weight image goes first, each code in its own beats.

1. **Check phase.** Every sequence back to back, random idle cycles on the input (``tvalid`` low)
   and random backpressure on the output (``m_axis_tready`` low), both seeded. A passive monitor
   records every output handshake; each ``out_beats`` beats are reassembled into one output row
   and compared bit-exactly with the golden model's codes (the scoreboard of
   :mod:`rnnaccel.sim.bench_top`, final states included). ``m_axis_tlast`` must be set on the final
   beat of each sequence's final output and on no other beat.
2. **Throughput phase.** Pauses off, sequence 0 again ``RNNACCEL_THROUGHPUT_SEQUENCES`` times; its
   outputs are checked too, and the cycles between the final beats of consecutive outputs of a
   sequence must equal the analytic ``cycles_per_timestep_wrapped`` when it is given.

Environment (beside those of :mod:`rnnaccel.sim.bench_top`: ``RNNACCEL_BUILD_DIR``,
``RNNACCEL_RESULTS``, ``RNNACCEL_SEED``, ``RNNACCEL_IDLE``, ``RNNACCEL_BACKPRESSURE``,
``RNNACCEL_THROUGHPUT_SEQUENCES``, ``RNNACCEL_SIM``, ``RNNACCEL_PROGRESS``):

``RNNACCEL_BEAT_WIDTH``   bits per beat (required; must equal the ports' width)
``RNNACCEL_IN_BEATS``     beats per input row (required)
``RNNACCEL_OUT_BEATS``    beats per output row (required)
``RNNACCEL_CYCLES_PER_TIMESTEP_WRAPPED``  analytic cycles per timestep through the wrapper (optional)
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, RisingEdge

from rnnaccel.golden.fixed import QFormat
from rnnaccel.hdl.wrapper import pack_vector
from rnnaccel.sim.bench_top import (CLOCK_NS, FIRST_MISMATCHES, HandshakeMonitor, Scoreboard, _env_int,
                                    _pauses, bench_params, start_dut)
from rnnaccel.sim.vectors import load_vectors


def _env_required(name: str) -> int:
    v = os.environ.get(name, "").strip()
    if not v:
        raise RuntimeError(f"{name} is not set: the serial bench needs the wrapper's beat width and beats per "
                           f"vector (rnnaccel.sim.gatelevel.run_gatelevel sets them from report.json)")
    return int(v)


def _split(value: int, beats: int, width: int) -> list[int]:
    """``value`` as ``beats`` words of ``width`` bits, least significant first."""
    mask = (1 << width) - 1
    return [(value >> (b * width)) & mask for b in range(beats)]


async def _drive(dut, beats: list[tuple[int, int]], pauses):
    """Send ``(tdata, tlast)`` beats on ``s_axis``; before each, idle cycles while ``pauses`` says so."""
    clock_edge = RisingEdge(dut.clk)
    for data, last in beats:
        while next(pauses):
            dut.s_axis_tvalid.value = 0
            await clock_edge
        dut.s_axis_tdata.value = data
        dut.s_axis_tlast.value = last
        dut.s_axis_tvalid.value = 1
        await clock_edge
        while dut.s_axis_tready.value != 1:         # sampled at the edge: the handshake of this edge
            await clock_edge
    dut.s_axis_tvalid.value = 0
    dut.s_axis_tlast.value = 0


async def _backpressure(dut, pauses):
    """``m_axis_tready`` low while ``pauses`` says so, high otherwise, one draw per cycle."""
    clock_edge = RisingEdge(dut.clk)
    while True:
        dut.m_axis_tready.value = 0 if next(pauses) else 1
        await clock_edge


async def _wait_beats(dut, monitor: HandshakeMonitor, count: int, budget: int, progress: Path | None,
                      phase: str) -> str | None:
    """Wait until ``monitor`` holds ``count`` beats; an error text after ``budget`` cycles."""
    waited = 0
    while len(monitor) < count:
        if waited >= budget:
            return (f"{phase}: timeout: {len(monitor)} of {count} output beats after {budget} cycles "
                    f"(the design stalled or lost beats)")
        await ClockCycles(dut.clk, 64)
        waited += 64
        if progress is not None:
            progress.write_text(f"{phase}: {len(monitor)}/{count} output beats\n")
    return None


def _rows(data: list, last: list, out_beats: int, width: int, board: Scoreboard, phase: str) -> tuple[list, list]:
    """Output rows (one int per ``out_beats`` beats; None if a beat had X/Z bits) and their ``tlast``
    (that of the final beat); ``tlast`` on any other beat counts as a tlast error."""
    rows, lasts = [], []
    for i in range(len(data) // out_beats):
        chunk = data[i * out_beats:(i + 1) * out_beats]
        flags = last[i * out_beats:(i + 1) * out_beats]
        rows.append(None if any(b is None for b in chunk) else sum(b << (k * width) for k, b in enumerate(chunk)))
        lasts.append(bool(flags[-1]))
        early = [k for k, f in enumerate(flags[:-1]) if f]
        if early:
            board.tlast_errors += 1
            if len(board.first) < FIRST_MISMATCHES:
                board.first.append({"phase": phase, "output": i, "tlast_on_beats": early,
                                    "expected": f"tlast only on beat {out_beats - 1}"})
    return rows, lasts


@cocotb.test()
async def test_serial_top(dut):
    """Bit-exact check of every output through the byte-serial top, tlast placement, and cycles per step."""
    wall0 = time.monotonic()
    prm = bench_params()
    build, results_path, seed, simulator = prm["build"], prm["results_path"], prm["seed"], prm["simulator"]
    idle, backpressure, n_tp = prm["idle"], prm["backpressure"], prm["n_tp"]
    width = _env_required("RNNACCEL_BEAT_WIDTH")
    in_beats = _env_required("RNNACCEL_IN_BEATS")
    out_beats = _env_required("RNNACCEL_OUT_BEATS")
    cpt_wrapped = _env_int("RNNACCEL_CYCLES_PER_TIMESTEP_WRAPPED", 0) or None
    progress = Path(os.environ["RNNACCEL_PROGRESS"]) if os.environ.get("RNNACCEL_PROGRESS") else None

    summary = json.loads((build / "summary.json").read_text())
    m = summary["model"]
    Y = int(m.get("output_size", m["hidden_size"]))
    fmt = QFormat.parse(m["formats"]["data"])
    w_fmt = QFormat.parse(m["formats"]["weight"])
    cell_width = QFormat.parse(m["formats"]["cell"]).width
    vectors = load_vectors(build)
    S = vectors.sequences
    for port in ("s_axis_tdata", "m_axis_tdata"):
        got = len(getattr(dut, port))
        assert got == width, f"{port} is {got} bits; the serial top's beats are {width} bits (report.json)"

    monitor = await start_dut(dut, ["s_axis_tvalid", "s_axis_tlast", "s_axis_tdata", "m_axis_tready"])
    board = Scoreboard(vectors, fmt, Y, cell_width)
    errors: list[str] = []
    rng = random.Random(seed)

    def sequence_beats(s: int) -> list[tuple[int, int]]:
        rows = vectors.input_rows(s, fmt.width, cell_width)
        beats = []
        for t, v in enumerate(rows):
            if v >> (in_beats * width):
                raise AssertionError(f"input row {t} of sequence {s} has more than in_beats * width = "
                                     f"{in_beats * width} bits")
            for b, word in enumerate(_split(v, in_beats, width)):
                beats.append((word, int(t == len(rows) - 1 and b == in_beats - 1)))
        return beats

    # -- weight image (designs with run-time loaded weights), then all sequences ---------------------
    beats: list[tuple[int, int]] = []
    w_codes = 0
    if summary.get("axis", {}).get("weight_image_codes"):
        assert vectors.w_image is not None, "the design loads weights but vectors.npz has no w_image"
        for code in vectors.w_image.tolist():
            beats.extend((b, 0) for b in pack_vector([code], w_fmt.width, width))
        w_codes = len(vectors.w_image)
    for s in range(S):
        beats.extend(sequence_beats(s))

    # -- phase 1: idles and backpressure --------------------------------------------------------------
    slow = 1.0 / max(1e-3, (1 - idle) * (1 - backpressure))
    step = max(cpt_wrapped or 0, int(summary["perf"].get("cycles_per_timestep") or 0), in_beats + 1, out_beats + 1)
    seq_cycles = vectors.seq_cycles if vectors.seq_cycles is not None else np.asarray(vectors.lengths) * step
    budget = int(4 * slow * (len(beats) + int(np.sum(seq_cycles)) + vectors.out_timesteps * (out_beats + step))) + 1000
    expected_beats = vectors.out_timesteps * out_beats
    t0 = get_sim_time("ns")
    driver = cocotb.start_soon(_drive(dut, beats, _pauses(random.Random(rng.random()), idle)))
    sink = cocotb.start_soon(_backpressure(dut, _pauses(random.Random(rng.random()), backpressure)))
    err = await _wait_beats(dut, monitor, expected_beats, budget, progress, "check phase")
    if err:
        errors.append(err)
    check_cycles = round((get_sim_time("ns") - t0) / CLOCK_NS)
    await ClockCycles(dut.clk, 2 * step + 10)          # extra beats show here
    driver_done = driver.done()
    if not driver_done:
        driver.cancel()
        errors.append("check phase: the input was not all accepted (s_axis_tready stayed low)")
    sink.cancel()
    dut.m_axis_tready.value = 1
    n1 = len(monitor)
    rows, lasts = _rows(monitor.data[:n1], monitor.last[:n1], out_beats, width, board, "check")
    if n1 % out_beats:
        errors.append(f"check phase: {n1} output beats, not a multiple of {out_beats} per output")
    board.check(rows, lasts, np.arange(vectors.out_timesteps), "check")

    # frames as m_axis_tlast delimits them (beats per sequence)
    frames, count = [], 0
    for flag in monitor.last[:n1]:
        count += 1
        if flag:
            frames.append(count)
            count = 0
    if count:
        frames.append(count)
    expected_frames = [int(n) * out_beats for n in vectors.out_lengths]
    bad_frames = [{"sequence": i, "beats": got, "expected": exp}
                  for i, (got, exp) in enumerate(zip(frames, expected_frames)) if got != exp]
    frame_errors = len(bad_frames) + abs(len(frames) - len(expected_frames))
    if frame_errors:
        errors.append(f"{frame_errors} frame(s) with tlast at the wrong beat"
                      + (f", first {bad_frames[0]}" if bad_frames else f" ({len(frames)} frames, {S} expected)"))

    # -- phase 2: throughput, pauses off -------------------------------------------------------------
    intervals: list[int] = []
    tp_seqs = [0] * (n_tp if S and not errors else 0)
    if tp_seqs:
        start = len(monitor)
        tp_beats = [b for _ in tp_seqs for b in sequence_beats(0)]
        driver = cocotb.start_soon(_drive(dut, tp_beats, _pauses(rng, 0.0)))
        sl = vectors.out_sequence(0)
        n_out = (sl.stop - sl.start) * len(tp_seqs)
        tp_budget = 4 * (len(tp_beats) + len(tp_seqs) * (int(seq_cycles[0]) + n_out * (out_beats + step))) + 1000
        err = await _wait_beats(dut, monitor, start + n_out * out_beats, tp_budget, progress, "throughput phase")
        if err:
            errors.append(err)
        await ClockCycles(dut.clk, 2 * step + 10)
        if not driver.done():
            driver.cancel()
            errors.append("throughput phase: the input was not all accepted")
        steps = np.concatenate([np.arange(sl.start, sl.stop) for _ in tp_seqs])
        rows, lasts = _rows(monitor.data[start:], monitor.last[start:], out_beats, width, board, "throughput")
        board.check(rows, lasts, steps, "throughput")
        # cycle of the final beat of each output; intervals between outputs of the same sequence
        ends = monitor.cycles[start + out_beats - 1::out_beats]
        for i in range(1, len(ends)):
            if not lasts[i - 1]:
                intervals.append(ends[i] - ends[i - 1])
    if cpt_wrapped and intervals and not min(intervals) == max(intervals) == cpt_wrapped:
        errors.append(f"cycles per timestep through the wrapper measured {min(intervals)}..{max(intervals)}, "
                      f"model {cpt_wrapped}")

    errors += board.errors("output")

    results = {
        "simulator": simulator,
        "bench": "serial",
        "passed": not errors,
        "errors": errors,
        "sequences": S,
        "timesteps": vectors.timesteps,
        "outputs": vectors.out_timesteps,
        "checked_timesteps": board.checked,
        "mismatches": board.mismatches,
        "element_mismatches": board.element_mismatches,
        "tlast_errors": board.tlast_errors,
        "final_state_mismatches": board.state_mismatches if vectors.hn_codes is not None else None,
        "frame_errors": frame_errors,
        "first_mismatches": board.first,
        "beat_width": width,
        "in_beats": in_beats,
        "out_beats": out_beats,
        "input_beats_sent": len(beats),
        "output_beats_received": n1,
        "weight_image_codes": w_codes or None,
        "cycles_per_timestep": (intervals[0] if intervals and min(intervals) == max(intervals)
                                else (sum(intervals) / len(intervals) if intervals else None)),
        "cycles_per_timestep_min": min(intervals) if intervals else None,
        "cycles_per_timestep_max": max(intervals) if intervals else None,
        "cycles_per_timestep_model": cpt_wrapped,
        "throughput_sequences": len(tp_seqs),
        "max_abs_error_vs_float": board.max_abs_error_vs_float if vectors.h_float is not None else None,
        "check_phase_cycles": check_cycles,
        "sim_cycles": round(get_sim_time("ns") / CLOCK_NS),
        "sim_wall_s": round(time.monotonic() - wall0, 3),
        "seed": seed,
        "idle": idle,
        "backpressure": backpressure,
    }
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2) + "\n")
    dut._log.info("results: %s", results_path)
    assert not errors, errors
