"""Verilog export of the accelerator."""

from __future__ import annotations

from amaranth.back import verilog

from rnnaccel.golden.model import Model

from .top import AxiStreamTop

__all__ = ["to_verilog", "FAMILIES"]

#: ``family`` values of :func:`to_verilog`.
FAMILIES = (None, "ice40", "ecp5")


def to_verilog(model: Model, name: str = "rnnaccel_top", plan=None, family: str | None = None) -> str:
    """Verilog of :class:`~rnnaccel.hdl.top.AxiStreamTop` for ``model``, top module ``name``.

    ``plan`` (:func:`~rnnaccel.hdl.memory_plan.plan_memories`): run-time loaded weight memories and
    the weight stream ports. ``family`` selects the vendor primitives the synthesis flow
    (:func:`rnnaccel.scripts.synth.top_verilog`) instantiates, so that the exported Verilog is the one
    synthesised:

    - ``None`` (default): plain Verilog (memories, multipliers, registers), for any simulator or flow.
    - ``"ice40"``: the ``plan``'s loaded weight memories are ``SB_SPRAM256KA`` instances (simulate
      with Yosys' ``ice40/cells_sim.v``).
    - ``"ecp5"``: :func:`~rnnaccel.hdl.dsp.dsp_primitives` ``("ecp5")``: registered multipliers are
      ``MULT18X18D`` with their own input/output registers, tables and weight memories of at least
      :data:`~rnnaccel.hdl.dsp.ROM_MIN_DEPTH` words ``DP16KD`` with their output register
      (simulated with Yosys' declarations and :data:`rnnaccel.sim.runner.PRIMITIVE_BEHAVIOUR`: Yosys
      ships no model of either).
    """
    from .dsp import dsp_primitives
    from .spram import ram_primitives
    if not name.isidentifier():
        raise ValueError(f"Verilog module name {name!r} is not an identifier; use letters, digits and _")
    if family not in FAMILIES:
        raise ValueError(f"unknown FPGA family {family!r}; use one of {', '.join(map(repr, FAMILIES))}")
    top = AxiStreamTop(model, plan)
    with dsp_primitives(family), ram_primitives(family):
        return verilog.convert(top, name=name, emit_src=False)
