"""Analytic cycle and resource model, computed from the model description alone.

The hardware blocks take their pipeline depths from these functions, so the model and the
generated design cannot drift apart; simulation checks that they agree exactly.

Schedule of one timestep (input always valid, output always ready)::

    cycle 0                 accept x_t (the same cycle that hands h_{t-1} to the output)
    cycles 1 .. R*F         one matrix-vector beat per cycle: R rows per PE, F = ceil(N/SIMD) folds
    + mvu_latency           last accumulator out of the matrix-vector unit
    + gate_latency          last activated gate
    + elementwise_latency   last h_t element written
    = next cycle 0

so ``cycles_per_timestep = 1 + R*F + mvu_latency + gate_latency + elementwise_latency``, for an
LSTM ``= R*F + 26 + ceil(log2 SIMD)``: within the MAC bound + 28 for SIMD <= 4. The pipeline is
cut for the clock rate of ECP5 (every register-to-register path either logic near its
registers or one long route without logic, e.g. out of a block RAM or DSP row, and every DSP
block with registered inputs), which costs these cycles; the MAC bound + 16 pipeline of issue 2
ran at 81.4 MHz on the same flow (README, "Figures").

The compact schedule (``[hardware] schedule = "compact"``, :mod:`rnnaccel.hdl.compact`) shares the
start and the matrix-vector beats; its drain is the last unit group through the shared activation
unit and the bit-serial element-wise stages (:func:`compact_drain`).

Every requantisation ends in a register and every memory has a registered address and data
(the table index register is what keeps the long rounding/saturation path of the accumulator
out of the table's address path).
"""

from __future__ import annotations

import math

from rnnaccel.golden.model import Model

__all__ = ["adder_tree_stages", "mvu_latency", "GATE_LATENCY", "TABLE_LATENCY", "ELEMENTWISE_LATENCY",
           "cycles_per_timestep", "mac_cycles", "multiplier_count", "memory_bits", "estimate"]
__all__ += ["PROJECTION_OUTPUT_LATENCIES", "projection_beats", "projection_cycles"]
__all__ += ["RESET_PRODUCT_LATENCY", "gru_rb_phase_gap"]
__all__ += ["compact_timing", "compact_drain", "compact_biases_in_memory", "SPLIT_ACC_LATENCY"]

#: Adder-tree levels between pipeline registers (a register after every level).
LEVELS_PER_STAGE = 1
#: Activation table: index register (after the requantisation), address register (clamped
#: magnitude), sync memory read, registered output (the block RAM's own register on ECP5), a
#: fabric register behind it.
TABLE_LATENCY = 5
#: Gate activation: the requantisation's adder (register), its saturation into the table's index
#: register, the table, then an output register (the table's symmetry and the choice between
#: activation kinds, kept out of the block RAM's route to its consumers).
GATE_LATENCY = 1 + TABLE_LATENCY + 1
#: LSTM element-wise stage: f*c and i*g products (input and product registers), exact sum
#: f*c + i*g, cell state (its requantisation in two cycles), the tanh index's requantisation (1),
#: tanh table, o*tanh product (input and product registers), hidden state.
ELEMENTWISE_LATENCY = 9 + TABLE_LATENCY

#: Element-wise stage of every cell. GRU: r*nh product, tanh table, the two products of
#: (1-z)*n + z*h, hidden state. Elman RNN: the hidden state register.
ELEMENTWISE_LATENCIES = {"lstm": ELEMENTWISE_LATENCY, "lstm_nf": ELEMENTWISE_LATENCY,
                         "gru": 3 + TABLE_LATENCY, "rnn_tanh": 1, "rnn_relu": 1}
#: Peephole LSTM (hdl/peephole.py): p*c products, i/f units, f*c and i*g, cell state, p_o*c_t,
#: o unit (beside phi(c_t)), o*phi(c_t), hidden state.
ELEMENTWISE_LATENCIES["lstm_peephole"] = 6 + 2 * TABLE_LATENCY
#: Jordan RNN (hdl/projected.py): h_t = phi(acc) to data, like rnn_tanh.
ELEMENTWISE_LATENCIES["jordan"] = 1
#: GRU with the reset before the recurrent product (hdl/gru_rb.py): candidate unit (its index
#: register takes requantize(nx + nh)), the products (1-z)*n and z*h_prev, hidden state.
ELEMENTWISE_LATENCIES["gru_rb"] = 2 + TABLE_LATENCY
#: gru_rb's reset product (hdl/gru_rb.py: ResetProduct): multiplier input registers, product
#: register, requantised r*h_{t-1} register.
RESET_PRODUCT_LATENCY = 3
#: Projection output stage (hdl/projected.py: ProjectionOutput). LSTM: the requantisation register;
#: Jordan: candidate unit (4, its index register first), then the tanh_out -> data register.
PROJECTION_OUTPUT_LATENCIES = {"lstm": 1, "jordan": TABLE_LATENCY + 1}


def elementwise_latency(cell: str) -> int:
    """Latency of the element-wise stage of ``cell`` (from its last gate to ``h_t``)."""
    return ELEMENTWISE_LATENCIES[cell]


def adder_tree_stages(simd: int) -> int:
    """Register stages of the adder tree over ``simd`` products (``ceil(log2 simd)``: one per level)."""
    levels = math.ceil(math.log2(simd)) if simd > 1 else 0
    return math.ceil(levels / LEVELS_PER_STAGE)


def mvu_latency(simd: int) -> int:
    """Cycles from a matrix-vector input beat to the accumulator it completes.

    weight data / input register (1; the memory is read a cycle ahead) + multiplier input register (1)
    + product register (1)
    + adder tree stages + accumulator (1).
    """
    return 4 + adder_tree_stages(simd)


def mac_cycles(model: Model) -> int:
    """Matrix-vector beats per timestep of one layer: ``H / pe`` units x the beats of a unit's rows.

    Every row visits the chunks of ``[x_t; h_{t-1}]`` it reads (:meth:`Model.fold_range`), so
    this is ``rows_per_pe * folds`` when all rows read the whole vector, and less for GRU's
    ``n`` rows, which read only x_t or only h_{t-1}.
    """
    return model.hidden_size // model.pe * model.beats_per_unit


def layer_cycles(model: Model) -> int:
    """Clock cycles per timestep of one layer (a one-layer model) in steady state."""
    if model.schedule == "compact":
        # hdl/compact.py: the start, the beats, the last row out of the matrix-vector unit, the
        # drain through the shared activation unit and the serial element-wise stages.
        split = SPLIT_ACC_LATENCY if compact_biases_in_memory(model) else 0
        return COMPACT_START + mac_cycles(model) + COMPACT_INPUT_REG + mvu_latency(model.simd) + split \
            + compact_drain(model)
    if model.cell == "gru_rb":
        # Two phases (hdl/gru_rb.py); the nh accumulators go straight to the element-wise stage.
        return 1 + mac_cycles(model) + gru_rb_phase_gap(model) + mvu_latency(model.simd) \
            + elementwise_latency(model.cell)
    if model.proj_size:
        return 1 + mac_cycles(model) + mvu_latency(model.simd) + GATE_LATENCY + elementwise_latency(model.cell) \
            + projection_cycles(model)
    return 1 + mac_cycles(model) + mvu_latency(model.simd) + GATE_LATENCY + elementwise_latency(model.cell)


#: Compact layer (hdl/compact.py): cycles from the matrix-vector unit's output of a row to stage A
#: seeing lane 0's value pending (accumulator register, look-up request, GATE_LATENCY, the lane's
#: unit registers).
COMPACT_PENDING = 2 + GATE_LATENCY
#: Compact stage A, besides the ``w`` product cycles: from seeing a unit pending to offering it to
#: stage B (take and read c, start, sum in two halves, cell state in two cycles, tanh index).
COMPACT_A = 7
#: Compact layer: the step starts the cycle after its condition (a flip-flop drives the start).
COMPACT_START = 1
#: Compact layer: the registers between the input vector and the matrix-vector unit (the x_t
#: multiplexer in two registered halves; the h_{t-1} memories are read in the first).
COMPACT_INPUT_REG = 2
#: Matrix-vector unit with the biases from its port (``external_bias``): its accumulators are split
#: in two halves, the high one a cycle behind.
SPLIT_ACC_LATENCY = 1


def compact_biases_in_memory(model: Model) -> bool:
    """Whether the compact layer (hdl/compact.py) keeps the biases in its ``h_{t-1}`` memories (one
    word per row, read with the row's first beat) rather than in tables in logic: the PEs' biases
    fit across the SIMD lanes (``pe * bias.width <= simd * data.width``), a row's first chunk is
    all x_t (``X >= simd``), and the bias word, held for a row's ``F`` beats, is still there when
    the matrix-vector unit's high accumulator half takes it (``mvu_latency <= F``)."""
    return (model.pe * model.bias.width <= model.simd * model.formats.data.width
            and model.input_size >= model.simd and mvu_latency(model.simd) <= model.folds)
#: Compact stage B, besides the ``w`` product cycles: from taking a unit to taking the next one
#: (look-up request, GATE_LATENCY look-up, start, hidden state).
COMPACT_B = 4 + GATE_LATENCY


def compact_timing(model: Model) -> dict:
    """Cycle counts of the compact layer's serial stages (hdl/compact.py), from the formats.

    ``w``: cycles of one bit-serial product (the gate value's bits); ``a``: stage A from seeing a
    unit pending to offering it to stage B; ``b``: stage B from taking a unit to being free again,
    without a wait for a look-up slot; ``slot_wait``: the longest such wait (the row accumulators
    have priority, ``pe`` cycles per row).
    """
    w = model.formats.sigmoid_out.width
    return {"w": w, "a": COMPACT_A + w, "b": COMPACT_B + w, "slot_wait": model.pe}


def compact_drain(model: Model) -> int:
    """Compact layer: cycles from the matrix-vector unit's last output of a step to the next step's start.

    The last unit group's ``pe`` units go through the shared activation unit one per cycle (lane
    ``p``'s last gate value is pending ``COMPACT_PENDING + p`` cycles after the output), then through
    stage A (one unit at a time, ``a`` cycles to the hand-over, the next one the cycle after the
    hand-over) and stage B (``b`` cycles per unit): a recurrence over the lanes, as the two stages
    serve them. The hidden state of the last unit is ready ``b`` cycles after stage B took it, and
    the next step starts the cycle after (the output register is loaded in between).
    """
    t = compact_timing(model)
    a_free = b_free = 0
    take = 0
    for p in range(model.pe):
        a_start = max(COMPACT_PENDING + p, a_free)
        take = max(a_start + t["a"], b_free)
        a_free, b_free = take + 1, take + t["b"]
    return b_free + 1


def gru_rb_phase_gap(model: Model) -> int:
    """Idle matrix-vector cycles between the two phases of a ``gru_rb`` step (hdl/gru_rb.py).

    Phase 2 (rows ``nh = U_n rh``) starts when ``rh = r*h_{t-1}`` of the last unit is in its
    register bank: ``mvu_latency + GATE_LATENCY + RESET_PRODUCT_LATENCY`` cycles after the last beat
    of that unit's ``r`` row, a wait that the unit's ``z`` and ``nx`` rows (``F + F_x`` beats)
    cover in part or whole. So a ``gru_rb`` step takes ``1 + mac_cycles + gap + mvu_latency
    + elementwise_latency("gru_rb")`` cycles, with ``gap = max(0, mvu_latency + GATE_LATENCY
    + RESET_PRODUCT_LATENCY - (F + F_x))``.
    """
    after_r = sum(b - a for a, b in model.fold_ranges[1:3])          # rows z and nx of the last unit
    return max(0, mvu_latency(model.simd) + GATE_LATENCY + RESET_PRODUCT_LATENCY - after_r)


def projection_beats(model: Model) -> int:
    """Matrix-vector beats of the projection pass (LSTM with ``proj_size``, Jordan): ``ceil(P / pe)``
    rows per PE (rows past ``P`` are zero padding) times ``ceil(H / simd)`` chunks of the ``H`` results."""
    return math.ceil(model.proj_size / model.pe) * math.ceil(model.hidden_size / model.simd)


def projection_cycles(model: Model) -> int:
    """Cycles a projected layer's step adds after the element-wise stage (hdl/projected.py): the
    projection beats on the same matrix-vector unit, its latency, and the projection output stage.

    So a projected layer takes ``1 + mac_cycles + mvu_latency + GATE_LATENCY + elementwise_latency
    + projection_beats + mvu_latency + PROJECTION_OUTPUT_LATENCIES[cell]`` cycles per step.
    """
    return projection_beats(model) + mvu_latency(model.simd) + PROJECTION_OUTPUT_LATENCIES[model.cell]


def head_parallelism(model: Model) -> tuple[int, int]:
    """(PE, SIMD) of the dense head: the largest divisor of ``head_size`` not above ``pe``, and
    ``simd`` capped at the head's input length."""
    n_in = model.state_size * model.directions
    pe = max(d for d in range(1, model.pe + 1) if model.head_size % d == 0)
    return pe, min(model.simd, n_in)


def head_cycles(model: Model) -> int:
    """Clock cycles per timestep of the dense head: accept, ``rows/PE * folds`` beats, the
    matrix-vector latency, the requantisation register and the hand-over to the output register."""
    pe, simd = head_parallelism(model)
    beats = model.head_size // pe * math.ceil(model.state_size * model.directions / simd)
    return 1 + beats + mvu_latency(simd) + 1


def stage_cycles(model: Model) -> list[int]:
    """Cycles per timestep of every pipeline stage of a unidirectional network: the layers, then the head."""
    cycles = [layer_cycles(model.layer(k)) for k in range(model.num_layers)]
    return cycles + ([head_cycles(model)] if model.head_size else [])


#: Cycles of a bidirectional stage besides its steps: the start of the backward pass and the
#: first output's buffer read and register.
BIDIRECTIONAL_OVERHEAD = 7


def sequence_cycles(model: Model, steps: int) -> int:
    """Clock cycles between the starts of consecutive sequences of ``steps`` timesteps (input
    always valid, output always ready), in steady state.

    Unidirectional: ``steps * cycles_per_timestep``. Bidirectional: every stage ``k`` takes
    ``(T-1) C_k`` (forward pass, overlapping the input) + ``T C_k`` (backward pass)
    + ``(T-1) E_k`` (outputs after the first, one every ``E_k = max(2, C_{k+1})`` cycles: a buffer
    read and a register, or the next stage's pace) + :data:`BIDIRECTIONAL_OVERHEAD`; the network
    takes the slowest stage (the head takes ``T`` of its steps).
    """
    T = int(steps)
    if T < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not model.bidirectional:
        return T * cycles_per_timestep(model)
    stages = stage_cycles(model)
    periods = []
    for k in range(model.num_layers):
        nxt = stages[k + 1] if k + 1 < len(stages) else 2
        periods.append((T - 1) * stages[k] + T * stages[k] + (T - 1) * max(2, nxt) + BIDIRECTIONAL_OVERHEAD)
    if model.head_size:
        periods.append(T * stages[-1])
    return max(periods)


def cycles_per_timestep(model: Model) -> int:
    """Clock cycles per timestep in steady state (input always valid, output always ready).

    One layer: :func:`layer_cycles`. Stacked layers and the head are pipeline stages that work
    on different timesteps at once, so a stack takes the slowest stage's cycles per timestep.
    A bidirectional network has no fixed figure per step (it buffers whole sequences): use
    :func:`sequence_cycles`.
    """
    if model.bidirectional:
        raise ValueError("a bidirectional network works on whole sequences: use sequence_cycles(model, T)")
    return max(stage_cycles(model))


def _units(model: Model):
    from rnnaccel.golden.layer import activation_units
    return activation_units(model)


#: Element-wise multipliers per PE lane of each cell.
ELEMENTWISE_MULTIPLIERS = {"lstm": 3, "lstm_nf": 2, "gru": 3, "rnn_tanh": 0, "rnn_relu": 0}
#: Peephole LSTM: p_i*c, p_f*c, f*c, i*g, p_o*c_t, o*phi(c_t).
ELEMENTWISE_MULTIPLIERS["lstm_peephole"] = 6
#: Jordan RNN: none (its output unit is counted with the activation units).
ELEMENTWISE_MULTIPLIERS["jordan"] = 0
#: GRU, reset before the recurrent product: r*h_{t-1} (phase 1), (1-z)*n and z*h_{t-1}.
ELEMENTWISE_MULTIPLIERS["gru_rb"] = 3


def _layer_resources(layer: Model) -> dict:
    units = _units(layer)
    acts = {r.act for r in layer.cell_spec.rows}
    lane_units = [units[k] for k in ("gate", "cand") if k in acts]
    if layer.cell_spec.state is not None:          # the element-wise stage's candidate unit
        lane_units.append(units["cand"])
    if layer.cell == "lstm_peephole":              # its i, f and o units are in the element-wise stage
        lane_units += [units["gate"]] * 3
    if layer.cell == "jordan":                     # the projection output's candidate unit (y_t = phi)
        lane_units.append(units["cand"])
    f = layer.formats
    res = {
        "mvu": layer.pe * layer.simd,
        "elementwise": layer.pe * (ELEMENTWISE_MULTIPLIERS[layer.cell] + sum(u.multipliers for u in lane_units)),
        "weights": layer.hidden_size // layer.pe * layer.beats_per_unit * layer.pe * layer.simd * f.weight.width,
        "bias": layer.rows * layer.bias.width,
        "tables": layer.pe * sum(u.memory_bits for u in lane_units),
    }
    if layer.schedule == "compact":                # hdl/compact.py: one shared unit (or two), serial products
        from rnnaccel.golden.activation import shared_gate_offset
        shared = [units["cand"]] + ([] if shared_gate_offset(units["gate"], units["cand"]) is not None
                                    else [units["gate"]])
        res["elementwise"] = sum(u.multipliers for u in shared)
        res["tables"] = sum(u.memory_bits for u in shared)
    if layer.proj_size:                            # projection rows in the same matrix-vector memories
        res["weights"] += projection_beats(layer) * layer.pe * layer.simd * f.weight.width
        res["bias"] += math.ceil(layer.proj_size / layer.pe) * layer.pe * layer.bias.width
    return res


def multiplier_count(model: Model) -> dict[str, int]:
    """Multipliers of the design: ``pe * simd`` per layer's matrix-vector unit, the element-wise
    stages' products (3 per PE for LSTM and GRU, 2 without forget gate, none for Elman) and the
    piecewise-linear activation units' multipliers, and the head's matrix-vector unit."""
    layers = [_layer_resources(lay) for directions in model.layers() for lay in directions]
    mvu = sum(r["mvu"] for r in layers)
    ew = sum(r["elementwise"] for r in layers)
    head = 0
    if model.head_size:
        pe, simd = head_parallelism(model)
        head = pe * simd
    return {"mvu": mvu, "elementwise": ew, "head": head, "total": mvu + ew + head}


def memory_bits(model: Model) -> dict[str, int]:
    """Bits of memory: weights (padded to whole chunks), biases (format ``model.bias``), activation
    tables (per PE lane), the head's weights and biases, and bidirectional sequence buffers."""
    layers = [_layer_resources(lay) for directions in model.layers() for lay in directions]
    out = {k: sum(r[k] for r in layers) for k in ("weights", "bias", "tables")}
    f = model.formats
    if model.head_size:
        pe, simd = head_parallelism(model)
        n_in = model.state_size * model.directions
        out["weights"] += model.head_size * math.ceil(n_in / simd) * simd * f.weight.width
        out["bias"] += model.head_size * model.bias.width
    out["buffers"] = 0
    if model.bidirectional:
        out["buffers"] = sum(model.max_len * (model.layer_input_size(k) + 2 * model.state_size) * f.data.width
                             for k in range(model.num_layers))
    out["total"] = sum(out.values())
    return out


def estimate(model: Model) -> dict:
    """Everything above as one dictionary (for ``summary.json``)."""
    layer0 = model.layer(0)
    out = {
        "mac_cycles_per_timestep": mac_cycles(layer0),
        "mac_bound": math.ceil(layer0.rows * layer0.vector_size / (layer0.pe * layer0.simd)),
        "stage_cycles": stage_cycles(model),
        "multipliers": multiplier_count(model),
        "memory_bits": memory_bits(model),
    }
    if model.bidirectional:
        out["sequence_cycles_at_max_len"] = sequence_cycles(model, model.max_len)
    else:
        out["cycles_per_timestep"] = cycles_per_timestep(model)
        out["pipeline_latency"] = layer_cycles(layer0) - mac_cycles(layer0)
    return out
