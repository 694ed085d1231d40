"""Primitives with their own registers (hdl/dsp.py): registered_rom in simulation, and its ECP5 block
RAM contents against the layout Yosys' own ECP5 block RAM mapping writes."""

from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from rnnaccel.hdl.dsp import (DP16KD_CONFIGS, ROM_MIN_DEPTH, RomConfig, dp16kd_initvals, dsp_primitives, registered_product,
                              registered_rom, rom_config)
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


def _table(depth, width, seed):
    rng = np.random.default_rng(seed)
    if width <= 62:
        return [int(v) for v in rng.integers(-(1 << (width - 1)), 1 << (width - 1), depth)]
    # wider than int64: signed codes from 16-bit pieces
    pieces = rng.integers(0, 1 << 16, (depth, -(-width // 16)))
    codes = [sum(int(p) << (16 * i) for i, p in enumerate(row)) & ((1 << width) - 1) for row in pieces]
    return [c - (1 << width) if c >> (width - 1) else c for c in codes]


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


def _bram_blocks(component, family):
    """``[(cell type, read width, read REGMODE, (INITVAL_00, ..))]`` of the DP16KD and PDPW16KD cells
    after ``synth_ecp5`` (a DP16KD in its 36-bit mode reads on port B)."""
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
        p = c["parameters"]
        vals = tuple(int(p[f"INITVAL_{i:02X}"], 2) for i in range(64)) if c["type"] in ("DP16KD", "PDPW16KD") else ()
        if c["type"] == "DP16KD":
            port = "B" if int(p["DATA_WIDTH_A"], 2) == 36 else "A"
            blocks.append(("DP16KD", int(p[f"DATA_WIDTH_{port}"], 2), p[f"REGMODE_{port}"].strip(), vals))
        elif c["type"] == "PDPW16KD":
            assert int(p["DATA_WIDTH_W"], 2) == 36
            blocks.append(("PDPW16KD", int(p["DATA_WIDTH_R"], 2), p["REGMODE"].strip(), vals))
    return sorted(blocks, key=lambda b: b[3])


_SLOW = pytest.mark.slow


@pytest.mark.parametrize("depth,width", [(2048, 16), (1024, 16), (4096, 8), (256, 16), (64, 8),
                                         (512, 36), (256, 64), (384, 20),
                                         pytest.param(8192, 4, marks=_SLOW), pytest.param(16384, 2, marks=_SLOW),
                                         pytest.param(512, 12, marks=_SLOW), pytest.param(256, 128, marks=_SLOW)])
def test_dp16kd_contents_match_yosys_mapping(depth, width):
    """The instantiated blocks hold exactly what Yosys' mapping of the same table puts in its blocks
    (same configuration, same split of the data bits), and use the output register; tables below
    ROM_MIN_DEPTH are left to Yosys (no block RAM here). Words wider than 18 bits of at most 512
    words: PDPW16KD here, where Yosys writes a DP16KD in its 36-bit mode (the same contents)."""
    init = _table(depth, width, depth + width)
    ours = _bram_blocks(_Rom(init, width), "ecp5")
    yosys = _bram_blocks(_Rom(init, width, inferred=True), None)
    cfg = rom_config(depth, width)
    assert len(ours) == len(yosys) == (0 if cfg is None else cfg.blocks)
    for (t_o, w_o, reg_o, vals_o), (t_y, w_y, reg_y, vals_y) in zip(ours, yosys):
        assert t_o == cfg.primitive and t_y == "DP16KD"
        assert w_o == w_y == cfg.width and vals_o == vals_y
        assert reg_o == "OUTREG" and reg_y == "NOREG"


def test_rom_config_takes_the_fewest_blocks():
    # DP16KD: the widest configuration deep enough; PDPW16KD (512 x 36) where it takes fewer blocks.
    assert rom_config(2048, 16) == RomConfig("DP16KD", 9, 2048, 2)
    assert rom_config(1024, 40) == RomConfig("DP16KD", 18, 1024, 3)          # too deep for PDPW16KD
    assert rom_config(256, 64) == RomConfig("PDPW16KD", 36, 512, 2)          # DP16KD: 4
    assert rom_config(512, 128) == RomConfig("PDPW16KD", 36, 512, 4)         # DP16KD: 8
    assert rom_config(384, 19) == RomConfig("PDPW16KD", 36, 512, 1)          # DP16KD: 2
    assert rom_config(512, 18) == RomConfig("DP16KD", 18, 1024, 1)           # a tie keeps DP16KD
    assert rom_config(300, 54) == RomConfig("PDPW16KD", 36, 512, 2)          # DP16KD: 3
    assert rom_config(ROM_MIN_DEPTH - 1, 64) is None and rom_config(16385, 1) is None
    with pytest.raises(ValueError, match="at least 1"):
        rom_config(256, 0)


def test_dp16kd_initvals_layout():
    # 18 bits: row n in bits 20n.. of INITVAL_00; 9 bits: two words per row; 1 bit: data bits skip bit 8.
    assert dp16kd_initvals([0x3FFFF, 1], 18)[0] == 0x3FFFF | (1 << 20)
    assert dp16kd_initvals([0x1FF, 1, 5], 9)[0] == 0x1FF | (1 << 9) | (5 << 20)
    assert dp16kd_initvals([1] * 10, 1)[0] == 0xFF | (0b11 << 9)
    # 36 bits (PDPW16KD): word n is rows 2n (bits 0..17) and 2n + 1 (bits 18..35).
    assert dp16kd_initvals([(5 << 18) | 0x3FFFF, 3 << 18], 36)[0] == 0x3FFFF | (5 << 20) | (3 << 60)
    assert dp16kd_initvals([1 << 35] * 512, 36)[63] == sum(1 << (20 * i + 17) for i in range(1, 16, 2))
    assert [d for _, d in DP16KD_CONFIGS] == [1024, 2048, 4096, 8192, 16384]
    with pytest.raises(ValueError, match="does not fit 9 unsigned bits"):
        dp16kd_initvals([512], 9)
    with pytest.raises(ValueError, match="not 12 bits wide"):
        dp16kd_initvals([1], 12)
    with pytest.raises(ValueError, match="513 words of 36 bits do not fit"):
        dp16kd_initvals([0] * 513, 36)


class _Products(wiring.Component):
    """``registered_product`` of every operand pair shape in ``shapes`` (``(a_shape, b_shape, input_regs)``)."""

    def __init__(self, shapes):
        self.shapes = shapes
        ports = {}
        for i, (sa, sb, _) in enumerate(shapes):
            ports |= {f"a{i}": In(sa), f"b{i}": In(sb), f"p{i}": Out((Signal(sa) * Signal(sb)).shape())}
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        for i, (_, _, input_regs) in enumerate(self.shapes):
            p = registered_product(m, getattr(self, f"a{i}"), getattr(self, f"b{i}"), name=f"mul{i}",
                                   input_regs=input_regs)
            m.d.comb += getattr(self, f"p{i}").eq(p)
        return m


def test_ice40_registered_product_is_one_sb_mac16_with_its_registers(tmp_path):
    """Under dsp_primitives("ice40") a 16 x 16 product is one SB_MAC16 (input registers A_REG/B_REG,
    output register PIPELINE_16x16_MULT_REG2); Icarus with Yosys' SB_MAC16 model gives the exact
    product with the plain version's latency, for signed, unsigned and mixed operands; wider
    operands stay plain Amaranth."""
    import shutil

    from amaranth.hdl import unsigned
    from rnnaccel.sim.runner import primitive_model

    shapes = [(signed(16), signed(16), True), (unsigned(16), unsigned(16), True), (signed(16), unsigned(15), True),
              (signed(12), signed(9), False), (signed(16), unsigned(16), True)]
    with dsp_primitives("ice40"):
        text = verilog.convert(_Products(shapes), name="top", emit_src=False)
    assert len(re.findall(r"^\s*SB_MAC16\b", text, re.M)) == 4          # the mixed 16 x u16 pair is plain
    rng = np.random.default_rng(5)

    def codes(shape, n):
        lo, hi = (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed else (0, (1 << shape.width) - 1)
        return [lo, hi, lo, 0, hi] + [int(v) for v in rng.integers(lo, hi + 1, n)]
    n = 300
    stim = [(codes(sa, n), codes(sb, n)) for sa, sb, _ in shapes]
    steps = []
    for j in range(n + 5):
        sets = " ".join(f"a{i} = {a[j] & ((1 << sa.width) - 1)}; b{i} = {b[j] & ((1 << sb.width) - 1)};"
                        for i, ((a, b), (sa, sb, _)) in enumerate(zip(stim, shapes)))
        outs = ", ".join(f"p{i}" for i in range(len(shapes)))
        steps.append(f"    {sets}\n    #1 clk = 1; #1 clk = 0; $display(\"P {' '.join(['%0d'] * len(shapes))}\", {outs});")
    decl = "\n".join(f"  reg [{sa.width - 1}:0] a{i}; reg [{sb.width - 1}:0] b{i}; "
                     f"wire [{(Signal(sa) * Signal(sb)).shape().width - 1}:0] p{i};" for i, (sa, sb, _) in enumerate(shapes))
    conns = ", ".join([f".{x}{i}({x}{i})" for i in range(len(shapes)) for x in "abp"] + [".clk(clk)", ".rst(1'b0)"])
    (tmp_path / "top.v").write_text(text)
    (tmp_path / "mac.v").write_text(primitive_model("SB_MAC16"))
    (tmp_path / "tb.v").write_text(f"`timescale 1ns/1ps\nmodule tb;\n  reg clk = 0;\n{decl}\n  top dut({conns});\n"
                                   f"  initial begin\n" + "\n".join(steps) + "\n    $finish;\n  end\nendmodule\n")
    assert shutil.which("iverilog"), "iverilog not found: bash scripts/setup.sh --test installs it"
    subprocess.run(["iverilog", "-g2005", "-o", "tb.vvp", "tb.v", "top.v", "mac.v"], cwd=tmp_path, check=True,
                   capture_output=True, text=True, timeout=300)
    out = subprocess.run(["vvp", "-n", "tb.vvp"], cwd=tmp_path, check=True, capture_output=True, text=True,
                         timeout=300).stdout.split("\n")
    # (before its first input reaches it, a DSP register shows x: those cycles are not compared)
    rows = [[None if "x" in v else int(v) for v in ln.split()[1:]] for ln in out if ln.startswith("P ")]
    for i, ((a, b), (sa, sb, input_regs)) in enumerate(zip(stim, shapes)):
        width = (Signal(sa) * Signal(sb)).shape().width
        lat = 1 + int(input_regs)            # displayed after the clock edge that ends cycle j
        got = [rows[j + lat - 1][i] for j in range(n + 5 - lat)]
        got = [g - (1 << width) if g >> (width - 1) and (sa.signed or sb.signed) else g for g in got]
        np.testing.assert_array_equal(got, [a[j] * b[j] for j in range(n + 5 - lat)])
