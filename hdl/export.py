"""Verilog export of the accelerator."""

from __future__ import annotations

from amaranth.back import verilog

from rnnaccel.golden.model import Model

from .top import AxiStreamTop

__all__ = ["to_verilog"]


def to_verilog(model: Model, name: str = "rnnaccel_top", plan=None, family: str | None = None) -> str:
    """Verilog of :class:`~rnnaccel.hdl.top.AxiStreamTop` for ``model``, top module ``name``.

    ``plan`` (:func:`~rnnaccel.hdl.memory_plan.plan_memories`): run-time loaded weight memories and
    the weight stream ports. They are plain Verilog memories, unless ``family == "ice40"``:
    ``SB_SPRAM256KA`` instances (simulate with Yosys' ``ice40/cells_sim.v``).
    """
    from .spram import ram_primitives
    if not name.isidentifier():
        raise ValueError(f"Verilog module name {name!r} is not an identifier; use letters, digits and _")
    top = AxiStreamTop(model, plan)
    with ram_primitives(family):
        return verilog.convert(top, name=name, emit_src=False)
