"""Primitives with their own registers (hdl/dsp.py): registered_rom in simulation, and its ECP5 block
RAM contents against the layout Yosys' own ECP5 block RAM mapping writes."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from rnnaccel.hdl.dsp import DP16KD_CONFIGS, ROM_MIN_DEPTH, dp16kd_initvals, dsp_primitives, registered_rom
from rnnaccel.scripts import synth as synth_flow


class _Rom(wiring.Component):
    """``registered_rom`` (``inferred=False``) or a plain memory read port (``inferred=True``)."""

    def __init__(self, init, width, *, inferred=False):
        self.init, self.width, self.inferred = list(init), width, inferred
        super().__init__({"addr": In(range(len(self.init))), "data": Out(signed(width))})

    def elaborate(self, platform):
        m = Module()
        if self.inferred:
            m.submodules.mem = mem = memory.Memory(shape=signed(self.width), depth=len(self.init), init=self.init)
            rd = mem.read_port()
            m.d.comb += [rd.addr.eq(self.addr), self.data.eq(rd.data)]
        else:
            m.d.comb += self.data.eq(registered_rom(m, self.init, signed(self.width), self.addr, name="rom"))
        return m


def _config(depth):
    return next(w for w, d in DP16KD_CONFIGS if d >= depth)


def _table(depth, width, seed):
    rng = np.random.default_rng(seed)
    return [int(v) for v in rng.integers(-(1 << (width - 1)), 1 << (width - 1), depth)]


def test_registered_rom_reads_two_cycles_after_the_address():
    init = _table(100, 12, 1)
    dut = _Rom(init, 12)
    addrs = [int(a) for a in np.random.default_rng(2).integers(0, 100, 60)]
    got = []

    async def bench(ctx):
        for a in addrs + [0, 0]:
            ctx.set(dut.addr, a)
            await ctx.tick()
            got.append(ctx.get(dut.data))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    # got[n] is read in cycle n + 1: the word of the address set in cycle n - 1.
    assert got[1:len(addrs) + 1] == [init[a] for a in addrs]


def _dp16kd_blocks(component, family):
    """``[(DATA_WIDTH_A, REGMODE_A, (INITVAL_00, ..))]`` of the DP16KD cells after ``synth_ecp5``."""
    import tempfile
    from pathlib import Path

    with dsp_primitives(family):
        text = verilog.convert(component, name="top", emit_src=False)
    with tempfile.TemporaryDirectory(dir=".") as tmp:
        Path(tmp, "top.v").write_text(text)
        argv = synth_flow._tool_argv("yosys") + ["-q", "-p", "read_verilog top.v; synth_ecp5 -top top; "
                                                 "write_json out.json"]
        subprocess.run(argv, cwd=tmp, check=True, capture_output=True, timeout=600)
        cells = json.loads(Path(tmp, "out.json").read_text())["modules"]["top"]["cells"].values()
    blocks = []
    for c in cells:
        if c["type"] == "DP16KD":
            p = c["parameters"]
            blocks.append((int(p["DATA_WIDTH_A"], 2), p["REGMODE_A"].strip(),
                           tuple(int(p[f"INITVAL_{i:02X}"], 2) for i in range(64))))
    return sorted(blocks, key=lambda b: b[2])


_SLOW = pytest.mark.slow


@pytest.mark.parametrize("depth,width", [(2048, 16), (1024, 16), (4096, 8), (256, 16), (64, 8),
                                         pytest.param(8192, 4, marks=_SLOW), pytest.param(16384, 2, marks=_SLOW),
                                         pytest.param(512, 12, marks=_SLOW)])
def test_dp16kd_contents_match_yosys_mapping(depth, width):
    """The instantiated blocks hold exactly what Yosys' mapping of the same table puts in its blocks
    (same configuration, same split of the data bits), and use the output register; tables below
    ROM_MIN_DEPTH are left to Yosys (no block RAM here)."""
    init = _table(depth, width, depth + width)
    ours = _dp16kd_blocks(_Rom(init, width), "ecp5")
    yosys = _dp16kd_blocks(_Rom(init, width, inferred=True), None)
    assert len(ours) == len(yosys) == (0 if depth < ROM_MIN_DEPTH else -(-width // _config(depth)))
    for (w_o, reg_o, vals_o), (w_y, reg_y, vals_y) in zip(ours, yosys):
        assert w_o == w_y and vals_o == vals_y
        assert reg_o == "OUTREG" and reg_y == "NOREG"


def test_dp16kd_initvals_layout():
    # 18 bits: row n in bits 20n.. of INITVAL_00; 9 bits: two words per row; 1 bit: data bits skip bit 8.
    assert dp16kd_initvals([0x3FFFF, 1], 18)[0] == 0x3FFFF | (1 << 20)
    assert dp16kd_initvals([0x1FF, 1, 5], 9)[0] == 0x1FF | (1 << 9) | (5 << 20)
    assert dp16kd_initvals([1] * 10, 1)[0] == 0xFF | (0b11 << 9)
    assert [d for _, d in DP16KD_CONFIGS] == [1024, 2048, 4096, 8192, 16384]
    with pytest.raises(ValueError):
        dp16kd_initvals([512], 9)
