"""Verilog export of the accelerator."""

from __future__ import annotations

from amaranth.back import verilog

from rnnaccel.golden.model import Model

from .top import AxiStreamTop

__all__ = ["to_verilog"]


def to_verilog(model: Model, name: str = "rnnaccel_top") -> str:
    """Verilog of :class:`~rnnaccel.hdl.top.AxiStreamTop` for ``model``, top module ``name``."""
    if not name.isidentifier():
        raise ValueError(f"Verilog module name {name!r} is not an identifier; use letters, digits and _")
    top = AxiStreamTop(model)
    return verilog.convert(top, name=name, emit_src=False)
