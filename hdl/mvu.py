"""Matrix-vector unit: PE x SIMD multipliers, pipelined adder tree, accumulators.

Mirrors :func:`rnnaccel.golden.mvu.matrix_vector` (exact integer arithmetic).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from rnnaccel.golden.fixed import QFormat

from .dsp import registered_product, registered_rom
from .spram import LoadableMemory
from .fixed import add_with_carry
from .perf import LEVELS_PER_STAGE, adder_tree_stages, mvu_latency
from ._util import checked_init

__all__ = ["MatrixVectorUnit", "pack_banks", "fold_counter", "last_beat_flag", "bias_rom", "BIAS_ROM_GROUP"]

#: Words per first-level group of :func:`bias_rom`: one LUT4 per bit for 16 words.
BIAS_ROM_GROUP = 16


def bias_rom(m: Module, values, width: int, addr, *, name: str):
    """A constant table in logic with two registered stages: ``table[addr]`` two cycles later.

    Stage 1 reads every group of :data:`BIAS_ROM_GROUP` words at the low address bits (one LUT4
    level per bit on iCE40 and ECP5) into a register per group and registers the high address
    bits; stage 2 selects the group into the output register. A memory of the same contents is one
    register and a whole multiplexer tree deep: at 64 words that tree was the UP5K's critical path
    (7 LUT levels between the address and data registers).

    Parameters
    ----------
    m : Module
        Module the registers go into (``sync`` domain).
    values : array_like of int
        Signed table contents.
    width : int
        Word width in bits (signed).
    addr : Value
        Read address; the word comes out of the returned register two cycles after ``addr``.
    name : str
        Prefix of the register names.

    Returns
    -------
    Signal
        The output register (``signed(width)``).
    """
    words = [int(v) for v in np.asarray(values).reshape(-1)]
    groups = [words[i:i + BIAS_ROM_GROUP] for i in range(0, len(words), BIAS_ROM_GROUP)]
    lo_bits = max(1, (min(len(words), BIAS_ROM_GROUP) - 1).bit_length())
    lo = addr[:lo_bits] if len(groups) > 1 else addr
    stage1 = []
    for g, grp in enumerate(groups):
        reg = Signal(signed(width), name=f"{name}_g{g}", reset_less=True)
        table = Array(Const(v, signed(width)) for v in grp)
        m.d.sync += reg.eq(table[lo] if len(grp) > 1 else grp[0])
        stage1.append(reg)
    out = Signal(signed(width), name=name, reset_less=True)
    if len(groups) > 1:
        hi = Signal(range(len(groups)), name=f"{name}_hi", reset_less=True)
        m.d.sync += [hi.eq(addr[lo_bits:]), out.eq(Array(stage1)[hi])]
    else:
        m.d.sync += out.eq(stage1[0])
    return out


def pack_banks(weights, bias, pe: int, simd: int, row_order=None, fold_ranges=None):
    """Split a weight matrix into per-PE memory contents.

    Parameters
    ----------
    weights : array_like of int, shape (rows, N)
    bias : array_like of int, shape (rows,)
    pe, simd : int
    row_order : array_like of int, shape (pe, rows // pe), optional
        ``row_order[p, r]`` is the matrix row that PE ``p`` computes as its ``r``-th row.
        Default: PE ``p`` gets rows ``p, p + pe, p + 2 pe, ...``.
    fold_ranges : sequence of (start, stop), optional
        The chunks of the vector that local row ``r`` visits are ``fold_ranges[r % len(fold_ranges)]``
        (default: all ``folds = ceil(N / simd)`` chunks). Columns outside a row's chunks must be zero.

    Returns
    -------
    w_banks : numpy.ndarray, shape (pe, sum of the local rows' chunk counts, simd)
        The words of local row 0 (its chunks in order: chunk ``k`` holds columns
        ``k*simd .. k*simd + simd - 1``, zero-padded past column N), then of row 1, ...
    b_banks : numpy.ndarray, shape (pe, rows // pe)
    """
    w = np.asarray(weights, dtype=np.int64)
    b = np.asarray(bias, dtype=np.int64)
    rows, n = w.shape
    if rows % pe:
        raise ValueError(f"pe = {pe} must divide the number of rows {rows}")
    folds = -(-n // simd)
    if row_order is None:
        row_order = np.arange(rows).reshape(rows // pe, pe).T
    row_order = np.asarray(row_order)
    fold_ranges = _check_ranges(fold_ranges, folds, row_order.shape[1])
    wp = np.zeros((rows, folds, simd), dtype=np.int64)
    wp.reshape(rows, -1)[:, :n] = w
    words = []
    for r in range(row_order.shape[1]):
        start, stop = fold_ranges[r % len(fold_ranges)]
        chunk = wp[row_order[:, r]]                          # (pe, folds, simd)
        outside = np.delete(chunk, np.s_[start:stop], axis=1)
        if outside.any():
            raise ValueError(f"local row {r} has non-zero weights outside its chunks {start}..{stop - 1}")
        words.append(chunk[:, start:stop])
    return np.concatenate(words, axis=1), b[row_order]


def _check_ranges(fold_ranges, folds: int, rows: int) -> tuple[tuple[int, int], ...]:
    if fold_ranges is None:
        return ((0, folds),)
    fold_ranges = tuple((int(a), int(b)) for a, b in fold_ranges)
    if not fold_ranges or rows % len(fold_ranges):
        raise ValueError(f"the {len(fold_ranges)} fold ranges must divide the {rows} rows per PE")
    for a, b in fold_ranges:
        if not 0 <= a < b <= folds:
            raise ValueError(f"fold range ({a}, {b}) outside 0..{folds}")
    return fold_ranges


def fold_counter(m, fold_ranges, rows: int, enable, *, prefix: str = ""):
    """Counters that walk the chunks of every row: local row ``r``, its pattern position ``g``,
    chunk ``k`` within ``fold_ranges[g]``. Advance on ``enable``.

    Returns
    -------
    k, g, r : Signal
        Current chunk, pattern position and row.
    first, last : Value
        The current beat is the first / last chunk of its row.
    """
    n = len(fold_ranges)
    starts, stops = [a for a, _ in fold_ranges], [b - 1 for _, b in fold_ranges]
    folds = max(stops) + 1
    k = Signal(range(folds), init=starts[0], name=f"{prefix}k")
    g = Signal(range(n), name=f"{prefix}g")
    r = Signal(range(rows), name=f"{prefix}r")

    def table(values, index):
        if len(set(values)) == 1:
            return Const(values[0], range(folds))
        return Array(Const(v, range(folds)) for v in values)[index]

    first = k == table(starts, g)
    last = k == table(stops, g)
    with m.If(enable):
        with m.If(last):
            g_next = Mux(g == n - 1, 0, g + 1) if n > 1 else 0
            m.d.sync += k.eq(table(starts, g_next) if n > 1 else starts[0])
            if n > 1:
                m.d.sync += g.eq(g_next)
            m.d.sync += r.eq(Mux(r == rows - 1, 0, r + 1))
        with m.Else():
            m.d.sync += k.eq(k + 1)
    return k, g, r, first, last


def last_beat_flag(m, beats: int, start, running, *, name: str = "last_beat") -> Signal:
    """A flip-flop that is high in the last of ``beats`` consecutive beats: the beats follow the
    cycle of ``start`` one per cycle while ``running`` (a count of the beats left, so that no
    counter comparison lies in front of the flag's consumers).

    Returns
    -------
    Signal
        High in the cycle of the last beat (``start`` in cycle c: the cycle c + beats).
    """
    left = Signal(range(max(beats, 2)), name=f"{name}_left")
    flag = Signal(name=name)
    with m.If(start):
        m.d.sync += [left.eq(beats - 1), flag.eq(beats == 1)]
    with m.Elif(running):
        m.d.sync += [left.eq(left - 1), flag.eq(left == 1)]
    with m.Else():
        m.d.sync += flag.eq(0)
    return flag


class MatrixVectorUnit(wiring.Component):
    """``acc[row] = bias[row] + sum_k weights[row, k] * vector[k]``, PE rows in parallel.

    The input is the vector, fed ``simd`` elements per beat, row by row: for every local row
    ``r = 0 .. R-1`` the ``F = ceil(N / simd)`` chunks of the vector in order (``R*F`` beats for a
    whole matrix pass; the unit's own counters select the weight words). Every ``F``-th beat
    completes a row in every PE and produces one output beat with ``pe`` accumulators.

    Parameters
    ----------
    w_banks, b_banks : numpy.ndarray
        Memory contents from :func:`pack_banks`: weight codes (pe, R*F, simd), bias codes (pe, R).
    data_fmt, weight_fmt, acc_fmt : QFormat
        Formats of the vector, the weights, and the accumulator (wide enough for the exact sum).
    bias_fmt : QFormat, optional
        Format of the stored biases (accumulator precision, possibly narrower); default ``acc_fmt``.
    loaded : dict of int to int, optional
        PEs whose weight memory is written at run time, and the load-bus select of each.
    load_layout : data.StructLayout, optional
        The load bus (needed with ``loaded``).
    external_bias : bool
        The biases come from the ``bias_in`` port instead of the unit's own tables: it must hold
        row ``r``'s biases in cycles ``c + mvu_latency - 2`` and ``c + mvu_latency - 1``, where ``c``
        is the cycle of row ``r``'s first beat (the two halves of the running sum take them then).
        ``b_banks`` is then only checked. The accumulator is then split in two halves (the high
        half a cycle behind the low one, with its carry): latency ``mvu_latency + 1``
        (:data:`~rnnaccel.hdl.perf.SPLIT_ACC_LATENCY`).

    Attributes
    ----------
    bias_in : In(ArrayLayout(signed(bias.width), pe))
        Only with ``external_bias``.
    i_stream : In(stream.Signature(ArrayLayout(signed(data.width), simd), always_ready=True))
    o_stream : Out(stream.Signature(StructLayout({"acc": ArrayLayout(signed(acc.width), pe), "row": R})))
        ``row`` is the local row index ``r``; PE ``p``'s accumulator is for matrix row ``row_order[p, r]``.

    Notes
    -----
    Latency :func:`~rnnaccel.hdl.perf.mvu_latency` = 4 + ceil(log2 simd) cycles from the
    last beat of a row to its output: weight data and input registers (the weight memory is read
    one cycle ahead, at the address of the next beat), multiplier input register, product
    register, adder tree (a register after every level), accumulator; with ``external_bias`` one
    more (the accumulator's high half, :data:`~rnnaccel.hdl.perf.SPLIT_ACC_LATENCY`).
    Throughput one beat per cycle, no stalls (``always_ready``); ``pe * simd`` multipliers. The
    multiplier input and product registers are :func:`~rnnaccel.hdl.dsp.registered_product`'s:
    on ECP5 (synthesis flow) the ``MULT18X18D``'s own registers, so the weight memory's data and the
    input register feed the DSP blocks directly; in simulation plain Amaranth registers. The weight
    data register is :func:`~rnnaccel.hdl.dsp.registered_rom`'s (on ECP5 the ``DP16KD`` output
    register), which feeds the DSP blocks directly. No beat may come in the first cycle after reset
    (its weight word would need a read issued before the reset ended).
    One weight memory (``R*F`` words of ``simd * weight.width`` bits) per PE and, without
    ``external_bias``, one bias table in logic per PE (:func:`bias_rom`).
    The weight memories of the PEs in ``loaded`` (``{pe: select}``) have no initial contents: they are
    :class:`~rnnaccel.hdl.spram.LoadableMemory` (SPRAM on iCE40), written through the ``load`` port
    (:func:`~rnnaccel.hdl.spram.load_bus_layout` ``load_layout``) when ``load.sel == select``; the
    unit must not be given beats until the load is complete.
    """

    @checked_init
    def __init__(self, w_banks, b_banks, *, data_fmt: QFormat, weight_fmt: QFormat, acc_fmt: QFormat,
                 bias_fmt: QFormat | None = None, fold_ranges=None, loaded=None, load_layout=None,
                 external_bias: bool = False):
        w_banks = np.asarray(w_banks, dtype=np.int64)
        b_banks = np.asarray(b_banks, dtype=np.int64)
        if w_banks.ndim != 3:
            raise ValueError(f"w_banks must have shape (pe, rows*folds, simd), got {w_banks.shape}")
        self.pe, depth, self.simd = w_banks.shape
        if b_banks.ndim != 2 or b_banks.shape[0] != self.pe or (fold_ranges is None and depth % b_banks.shape[1]):
            raise ValueError(f"b_banks shape {b_banks.shape} does not match w_banks {w_banks.shape}")
        self.rows = b_banks.shape[1]
        if fold_ranges is None:
            self.folds = depth // self.rows
            self.fold_ranges = ((0, self.folds),)
        else:
            self.fold_ranges = _check_ranges(fold_ranges, max(b for _, b in fold_ranges), self.rows)
            self.folds = max(b for _, b in self.fold_ranges)
            beats = self.rows // len(self.fold_ranges) * sum(b - a for a, b in self.fold_ranges)
            if beats != depth:
                raise ValueError(f"w_banks has {depth} words per PE, but the fold ranges {self.fold_ranges} "
                                 f"over {self.rows} rows need {beats}")
        self.depth = depth
        if not weight_fmt.contains(w_banks).all():
            raise ValueError(f"weight codes outside {weight_fmt}")
        bias_fmt = acc_fmt if bias_fmt is None else bias_fmt
        if bias_fmt.frac != acc_fmt.frac or bias_fmt.width > acc_fmt.width:
            raise ValueError(f"bias format {bias_fmt} must have the accumulator's frac and fit in {acc_fmt}")
        if not bias_fmt.contains(b_banks).all():
            raise ValueError(f"bias codes outside {bias_fmt}")
        self.bias_fmt = bias_fmt
        self.w_banks, self.b_banks = w_banks, b_banks
        self.data_fmt, self.weight_fmt, self.acc_fmt = data_fmt, weight_fmt, acc_fmt
        self.latency = mvu_latency(self.simd)
        self.loaded = dict(loaded or {})
        if any(not 0 <= p < self.pe for p in self.loaded):
            raise ValueError(f"loaded PEs {sorted(self.loaded)} outside 0..{self.pe - 1}")
        if self.loaded and load_layout is None:
            raise ValueError("loaded weight memories need the load bus layout (load_layout)")
        ports = {"load": In(load_layout)} if self.loaded else {}
        self.external_bias = bool(external_bias)
        if self.external_bias:
            ports["bias_in"] = In(data.ArrayLayout(signed(bias_fmt.width), self.pe))
        super().__init__(ports | {
            "i_stream": In(stream.Signature(data.ArrayLayout(signed(data_fmt.width), self.simd),
                                            always_ready=True)),
            "o_stream": Out(stream.Signature(data.StructLayout({
                "acc": data.ArrayLayout(signed(acc_fmt.width), self.pe),
                "row": range(self.rows)}), always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        pe, simd, rows, depth = self.pe, self.simd, self.rows, self.depth
        wlayout = data.ArrayLayout(signed(self.weight_fmt.width), simd)

        # Beat counters: chunk k of row r, and the weight word address (a counter of its own).
        valid = self.i_stream.valid
        k, g, r, first, last = fold_counter(m, self.fold_ranges, rows, valid)
        # ``addr`` is the address of the current beat; the memory is read one cycle ahead (the
        # address of the next beat: this one's, advanced if this beat is valid), so that the memory
        # data gets a register of its own before the multiplier's input register (a block RAM's
        # unregistered clock-to-output is about 6 ns on ECP5) without a cycle more of latency; on ECP5 that
        # register is the block RAM's own output register (hdl/dsp.py: registered_rom). Every PE has
        # its own copy of the counter (they feed back into themselves, so synthesis keeps them
        # apart): one counter would drive the address pins of all PEs' block RAMs. The next address
        # is a register too (``addr_inc``, always ``addr`` + 1 wrapped), so the read address is one
        # multiplexer of two registers.
        def read_address(p):
            addr = Signal(range(depth), name=f"addr{p}")
            addr_inc = Signal(range(depth), init=1 % depth, name=f"addr_inc{p}")
            with m.If(valid):
                m.d.sync += [addr.eq(addr_inc), addr_inc.eq(Mux(addr_inc == depth - 1, 0, addr_inc + 1))]
            return Mux(valid, addr_inc, addr)
        # A beat in the first cycle after reset would need a read issued before it: the unit must not
        # be given one (the layers accept their first input in that cycle at the earliest, so their
        # first beat comes a cycle later); the block RAM's data then feeds the DSP blocks with no
        # logic in between.

        # Flags travel with the data: (valid, last fold, row) per stage (the first-fold flags are
        # per PE, below).
        n_stages = 3 + adder_tree_stages(simd)     # stage index of the adder tree output
        flag = data.StructLayout({"valid": 1, "last": 1, "row": range(rows)})
        stage = [Signal(flag, name=f"flag{i}") for i in range(n_stages + 1)]
        m.d.comb += [stage[0].valid.eq(valid), stage[0].last.eq(last), stage[0].row.eq(r)]
        for i in range(n_stages):
            m.d.sync += stage[i + 1].eq(stage[i])

        # Per-PE copies of the first-chunk flag of valid beats, from per-PE copies of the chunk counter
        # (counters feed back into themselves, so synthesis keeps them apart): the accumulators'
        # multiplexers are pe * acc.width LUTs, too many for one flag to drive.
        firsts, firsts_pre = [], []
        for p in range(pe):
            fp = first if p == 0 else fold_counter(m, self.fold_ranges, rows, valid, prefix=f"pe{p}_")[3]
            f = fp & valid
            for i in range(n_stages):
                if i == n_stages - 1:
                    firsts_pre.append(f)          # a row's first beat, one stage before the accumulator
                reg = Signal(name=f"first{p}_{i + 1}")
                m.d.sync += reg.eq(f)
                f = reg
            firsts.append(f)

        # Stage 1: weight memory data register (read a cycle earlier), input vector register. The
        # vector register is zero in cycles without a beat, so those add zero to the accumulators,
        # which then need no enable.
        x1 = Signal.like(self.i_stream.payload, reset_less=True)
        m.d.sync += x1.eq(Mux(valid, self.i_stream.payload.as_value(), 0))
        # Stage 2: multiplier input registers.  Stage 3: product registers. Both are the DSP
        # block's own registers where the target has them (hdl/dsp.py): the memory data and x1
        # go straight into the DSP, the product straight out of it into the adder tree.
        sums = []
        for p in range(pe):
            rd_addr = read_address(p)
            w1 = Signal(wlayout, name=f"w1_{p}", reset_less=True)
            if p in self.loaded:
                # Written at run time (SPRAM on iCE40): the load bus takes the port while it writes.
                mem = LoadableMemory(depth, wlayout.size)
                m.submodules[f"weights{p}"] = mem
                write = self.load.en & (self.load.sel == self.loaded[p])
                m.d.comb += [mem.addr.eq(Mux(write, self.load.addr, rd_addr)), mem.wr_en.eq(write),
                             mem.wr_data.eq(self.load.word)]
                # No first-cycle constant: the accelerator takes no input until the load is done,
                # and the memory reads word 0 in every idle cycle after the last write.
                m.d.sync += w1.as_value().eq(mem.rd_data)
            else:
                # registered_rom: the memory's read register and a data register (on ECP5 the block
                # RAM's own output register, so no fabric path starts at its slow clock-to-output).
                wbits = self.weight_fmt.width
                words = [sum((int(v) & ((1 << wbits) - 1)) << (i * wbits) for i, v in enumerate(word))
                         for word in self.w_banks[p]]
                rom = registered_rom(m, words, wlayout.size, rd_addr, name=f"weights{p}")
                m.d.comb += w1.as_value().eq(rom)
            level = []
            for s in range(simd):
                prod = registered_product(m, w1[s], x1[s], name=f"prod{p}_{s}")
                level.append(prod)
            # Adder tree: register after every LEVELS_PER_STAGE levels.
            tree_level = 0
            while len(level) > 1:
                nxt = [level[i] + level[i + 1] if i + 1 < len(level) else level[i]
                       for i in range(0, len(level), 2)]
                tree_level += 1
                if tree_level % LEVELS_PER_STAGE == 0 or len(nxt) == 1:
                    regs = []
                    for i, v in enumerate(nxt):
                        reg = Signal(signed(len(v)), name=f"tree{p}_{tree_level}_{i}", reset_less=True)
                        m.d.sync += reg.eq(v)
                        regs.append(reg)
                    nxt = regs
                level = nxt
            sums.append(level[0])

        # Accumulator stage: the bias is read two cycles ahead (row of the beat two stages before the
        # tree output) from a pipelined table in logic (:func:`bias_rom`).
        tree_out = stage[n_stages]
        if self.external_bias:
            self._split_accumulators(m, sums, firsts_pre, tree_out)
            return m
        for p in range(pe):
            acc = self.o_stream.payload.acc[p]
            bias = bias_rom(m, self.b_banks[p], self.bias_fmt.width, stage[n_stages - 2].row, name=f"bias{p}")
            m.d.sync += acc.eq(Mux(firsts[p], bias, acc) + sums[p])
        m.d.sync += [self.o_stream.valid.eq(tree_out.valid & tree_out.last),
                     self.o_stream.payload.row.eq(tree_out.row)]
        return m

    def _split_accumulators(self, m, sums, firsts_pre, tree_out):
        """Accumulators in two halves (with ``external_bias``): the low half adds the low bits of
        the tree's sum, the high half adds the high bits and the low half's carry a cycle later, so
        no carry chain is longer than half the accumulator (38 bits were 12 ns on the UP5K). The
        bias multiplexer follows each adder (a running sum that becomes the next row's bias the
        cycle before that row's first beat arrives), so the bias' route is not in front of a carry
        chain. The output register takes both halves a cycle after the row's last beat."""
        w = self.acc_fmt.width
        h = w // 2
        last = tree_out.valid & tree_out.last
        last_d = Signal(name="acc_last_d")
        row_d = Signal.like(tree_out.row, name="acc_row_d")
        m.d.sync += [last_d.eq(last), row_d.eq(tree_out.row),
                     self.o_stream.valid.eq(last_d), self.o_stream.payload.row.eq(row_d)]
        for p in range(self.pe):
            s_full = Signal(signed(w), name=f"acc_sum{p}")
            b_full = Signal(signed(w), name=f"acc_bias{p}")
            m.d.comb += [s_full.eq(sums[p]), b_full.eq(self.bias_in[p])]
            run_lo = Signal(h, name=f"acc_lo{p}", reset_less=True)
            run_hi = Signal(w - h, name=f"acc_hi{p}", reset_less=True)
            carry = Signal(name=f"acc_carry{p}")
            s_hi = Signal(w - h, name=f"acc_sum_hi{p}", reset_less=True)
            first_d = Signal(name=f"acc_first_d{p}")
            keep_lo = Signal(h, name=f"acc_keep_lo{p}", reset_less=True)
            tot_lo = Signal(h + 1, name=f"acc_tot_lo{p}")
            tot_hi = Signal(w - h, name=f"acc_tot_hi{p}")
            m.d.comb += [tot_lo.eq(run_lo + s_full[:h]), tot_hi.eq(add_with_carry(run_hi, s_hi, carry, w - h))]
            m.d.sync += [carry.eq(tot_lo[h]), s_hi.eq(s_full[h:]), first_d.eq(firsts_pre[p]),
                         run_lo.eq(Mux(firsts_pre[p], b_full[:h], tot_lo[:h])),
                         run_hi.eq(Mux(first_d, b_full[h:], tot_hi))]
            with m.If(last):
                m.d.sync += keep_lo.eq(tot_lo[:h])
            with m.If(last_d):
                m.d.sync += self.o_stream.payload.acc[p].eq(Cat(keep_lo, tot_hi))
