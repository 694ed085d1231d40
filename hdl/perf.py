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

so ``cycles_per_timestep = 1 + R*F + mvu_latency + gate_latency + elementwise_latency``
``= R*F + 15 + ceil(ceil(log2 SIMD) / 2)``: within the MAC bound + 16 for SIMD <= 4.

Every requantisation ends in a register and every memory has a registered address and data
(the table index register is what keeps the long rounding/saturation path of the accumulator
out of the table's address path).
"""

from __future__ import annotations

import math

from rnnaccel.golden.model import Model

__all__ = ["adder_tree_stages", "mvu_latency", "GATE_LATENCY", "TABLE_LATENCY", "ELEMENTWISE_LATENCY",
           "cycles_per_timestep", "mac_cycles", "multiplier_count", "memory_bits", "estimate"]

#: Adder-tree levels between pipeline registers.
LEVELS_PER_STAGE = 2
#: Activation table: index register (after the requantisation), sync memory read, registered output.
TABLE_LATENCY = 3
#: Gate activation: requantise into the table's index register, then the table.
GATE_LATENCY = TABLE_LATENCY
#: LSTM element-wise stage: products, cell state, tanh table (3), o*tanh product, hidden state.
ELEMENTWISE_LATENCY = 4 + TABLE_LATENCY

#: Element-wise stage of every cell. GRU: r*nh product, tanh table (3), the two products of
#: (1-z)*n + z*h, hidden state. Elman RNN: the hidden state register.
ELEMENTWISE_LATENCIES = {"lstm": ELEMENTWISE_LATENCY, "lstm_nf": ELEMENTWISE_LATENCY,
                         "gru": 3 + TABLE_LATENCY, "rnn_tanh": 1, "rnn_relu": 1}


def elementwise_latency(cell: str) -> int:
    """Latency of the element-wise stage of ``cell`` (from its last gate to ``h_t``)."""
    return ELEMENTWISE_LATENCIES[cell]


def adder_tree_stages(simd: int) -> int:
    """Register stages of the adder tree over ``simd`` products (``ceil(ceil(log2 simd) / 2)``)."""
    levels = math.ceil(math.log2(simd)) if simd > 1 else 0
    return math.ceil(levels / LEVELS_PER_STAGE)


def mvu_latency(simd: int) -> int:
    """Cycles from a matrix-vector input beat to the accumulator it completes.

    memory read / input register (1) + multiplier input register (1) + product register (1)
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
    return 1 + mac_cycles(model) + mvu_latency(model.simd) + GATE_LATENCY + elementwise_latency(model.cell)


def cycles_per_timestep(model: Model) -> int:
    """Clock cycles per timestep in steady state (input always valid, output always ready).

    One layer: :func:`layer_cycles`. Stacked layers are pipeline stages that work on different
    timesteps at once, so a stack takes the slowest layer's cycles per timestep.
    """
    if model.is_single_layer:
        return layer_cycles(model)
    return max(layer_cycles(lay) for directions in model.layers() for lay in directions)


def multiplier_count(model: Model) -> dict[str, int]:
    """Multipliers of the design: ``pe * simd`` in the matrix-vector unit, 3 per PE element-wise."""
    mvu = model.pe * model.simd
    ew = 3 * model.pe
    return {"mvu": mvu, "elementwise": ew, "total": mvu + ew}


def memory_bits(model: Model) -> dict[str, int]:
    """Bits of ROM: weights (padded to whole folds), biases (format ``model.bias``), tables (3 per PE)."""
    f = model.formats
    weights = model.rows * model.folds * model.simd * f.weight.width
    bias = model.rows * model.bias.width
    sig = (1 << (f.sigmoid_in.width - 1)) * f.sigmoid_out.width
    tanh = (1 << (f.tanh_in.width - 1)) * f.tanh_out.width
    tables = model.pe * (sig + 2 * tanh)
    return {"weights": weights, "bias": bias, "tables": tables, "total": weights + bias + tables}


def estimate(model: Model) -> dict:
    """Everything above as one dictionary (for ``summary.json``)."""
    return {
        "cycles_per_timestep": cycles_per_timestep(model),
        "mac_cycles_per_timestep": mac_cycles(model),
        "mac_bound": math.ceil(model.rows * model.vector_size / (model.pe * model.simd)),
        "pipeline_latency": cycles_per_timestep(model) - mac_cycles(model),
        "multipliers": multiplier_count(model),
        "memory_bits": memory_bits(model),
    }
