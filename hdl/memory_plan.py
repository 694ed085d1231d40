"""Where every memory of the design goes: block RAM (initialised by the bitstream) or, on iCE40 UP5K,
single-port SPRAM (written at run time through the accelerator's weight port).

The UP5K has 30 EBR blocks of 4 Kbit (120 Kbit) beside 4 SPRAMs of 256 Kbit (16K x 16). SPRAM
cannot be initialised by the bitstream, so a weight memory placed there is *loaded*: after reset
the accelerator takes the codes of those memories through its weight stream
(:class:`~rnnaccel.hdl.top.Accelerator` ``w_stream``, in :func:`weight_image` order) and accepts
inputs only when the last word is written. Everything else stays a read-only memory initialised
from the model.

:func:`plan_memories` makes the choice:

* every memory of the elaborated design is listed with its depth, width and the blocks it needs:
  on ECP5 the tables :func:`~rnnaccel.hdl.dsp.registered_rom` builds from ``DP16KD``/``PDPW16KD``
  primitives (activation tables, weight memories that are not loaded) exactly the blocks it
  instantiates (:func:`~rnnaccel.hdl.dsp.rom_config`), every other memory the cheapest of the
  family's block RAM aspect ratios (synthesis maps those; small ones may become logic instead);
* ``storage="auto"``: if the block RAM demand exceeds the part, weight memories of the
  matrix-vector units move to SPRAM, largest first, while SPRAMs remain (a memory of width ``w``
  takes ``ceil(w / 16)`` SPRAMs side by side and at most 16384 words); ``"spram"`` moves every
  memory that can move, ``"rom"`` none.

Weight memories that can move are those of :class:`~rnnaccel.hdl.layer.RecurrentLayer` layers
(every cell except ``gru_rb``, projected LSTMs and Jordan RNNs, in unidirectional networks); the
plan says which could not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rnnaccel.golden.model import Model

__all__ = ["Placement", "MemoryPlan", "plan_memories", "weight_image", "design_memories",
           "block_ram_blocks", "loadable_layers", "SPRAM_WORDS", "SPRAM_WIDTH", "STORAGE_CHOICES",
           "FAMILY_SPRAMS"]

#: Words and bits of one iCE40 SB_SPRAM256KA.
SPRAM_WORDS, SPRAM_WIDTH = 16384, 16
#: SPRAMs of each part with any (the UP5K's four).
FAMILY_SPRAMS = {"ice40-up5k": 4}
#: ``storage`` choices of :func:`plan_memories`.
STORAGE_CHOICES = ("auto", "rom", "spram")

#: Block RAM aspect ratios (width, depth) per family: iCE40 SB_RAM40_4K, ECP5 DP16KD.
_ASPECTS = {
    "ice40": ((16, 256), (8, 512), (4, 1024), (2, 2048)),
    "ecp5": ((36, 512), (18, 1024), (9, 2048), (4, 4096), (2, 8192), (1, 16384)),
}


def block_ram_blocks(depth: int, width: int, family: str) -> int:
    """Block RAMs of ``family`` that hold ``depth`` words of ``width`` bits (the cheapest aspect ratio)."""
    if family not in _ASPECTS:
        raise ValueError(f"unknown FPGA family {family!r}; choose one of {', '.join(_ASPECTS)}")
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in _ASPECTS[family])


def spram_blocks(depth: int, width: int) -> int | None:
    """SPRAMs that hold the memory side by side, or None if it is deeper than one SPRAM."""
    return math.ceil(width / SPRAM_WIDTH) if depth <= SPRAM_WORDS else None


@dataclass(frozen=True)
class Placement:
    """One memory of the design and where it goes.

    Attributes
    ----------
    memory : str
        Hierarchical name in the accelerator (``network.layer0.mvu.weights1``).
    depth, width : int
        Words and bits per word.
    where : {"block_ram", "spram"}
    blocks : int
        Block RAMs (``where == "block_ram"``) or SPRAMs it takes.
    loaded : bool
        Written at run time through the weight stream (SPRAM has no initial contents).
    primitive : str or None
        The block RAM primitive the design instantiates for it (ECP5 ``registered_rom`` tables:
        ``"DP16KD"`` or ``"PDPW16KD"``, ``blocks`` of them); None for a memory that synthesis maps
        (``blocks`` is then the cheapest aspect ratio's count).
    """

    memory: str
    depth: int
    width: int
    where: str
    blocks: int
    loaded: bool = False
    primitive: str | None = None

    @property
    def bits(self) -> int:
        return self.depth * self.width


@dataclass(frozen=True)
class MemoryPlan:
    """Placement of every memory of a model's accelerator on one target.

    Attributes
    ----------
    target : str or None
        Target name (None: no target, every memory a block RAM with its initial contents).
    family : str or None
    placements : tuple of Placement
    loaded : tuple of (int, int)
        ``(layer, pe)`` of the loaded weight memories, in load order (:func:`weight_image`).
    block_ram_available, spram_available : int or None
        The part's block RAMs and SPRAMs (None without a target).
    not_movable : tuple of str
        Weight memories that SPRAM would have helped but whose layer has no load path.
    """

    target: str | None
    family: str | None
    placements: tuple = ()
    loaded: tuple = ()
    block_ram_available: int | None = None
    spram_available: int | None = None
    not_movable: tuple = field(default=())

    @property
    def block_ram_used(self) -> int:
        return sum(p.blocks for p in self.placements if p.where == "block_ram")

    @property
    def primitive_blocks(self) -> dict[str, int]:
        """``{primitive: blocks}`` of the memories the design instantiates as block RAM primitives
        (:attr:`Placement.primitive`): what the generated Verilog holds, e.g. ``{"DP16KD": 24, "PDPW16KD": 16}``."""
        out: dict[str, int] = {}
        for p in self.placements:
            if p.primitive is not None:
                out[p.primitive] = out.get(p.primitive, 0) + p.blocks
        return out

    @property
    def spram_used(self) -> int:
        return sum(p.blocks for p in self.placements if p.where == "spram")

    @property
    def fits(self) -> bool:
        """The planned block RAMs and SPRAMs are within the part (True without a target)."""
        if self.block_ram_available is None:
            return True
        return self.block_ram_used <= self.block_ram_available and self.spram_used <= (self.spram_available or 0)

    def loaded_pes(self, layer: int) -> dict[int, int]:
        """``{pe: select}`` of layer ``layer``'s loaded weight memories (``select`` = index in :attr:`loaded`)."""
        return {p: i for i, (k, p) in enumerate(self.loaded) if k == layer}

    @property
    def image_words(self) -> int:
        """Memory words the weight stream fills (each ``simd`` codes)."""
        return sum(p.depth for p in self.placements if p.loaded)

    def loaded_placements(self) -> list[Placement]:
        """The loaded memories' placements in load order (:attr:`loaded`)."""
        by_name = {p.memory: p for p in self.placements}
        return [by_name[_weight_name(k, p)] for k, p in self.loaded]

    def load_layout(self):
        """The load bus of this plan (:func:`~rnnaccel.hdl.spram.load_bus_layout`), or None if nothing is loaded."""
        from .spram import load_bus_layout
        mems = self.loaded_placements()
        if not mems:
            return None
        return load_bus_layout(len(mems), max(p.depth for p in mems), mems[0].width)

    def as_dict(self) -> dict:
        return {
            "target": self.target,
            "block_ram": {"used": self.block_ram_used, "available": self.block_ram_available},
            "spram": {"used": self.spram_used, "available": self.spram_available},
            "fits": self.fits,
            "loaded_weight_memories": [list(x) for x in self.loaded],
            "not_movable": list(self.not_movable),
            "memories": [{"memory": p.memory, "depth": p.depth, "width": p.width, "where": p.where,
                          "blocks": p.blocks, "loaded": p.loaded, "primitive": p.primitive}
                         for p in self.placements],
        }

    def describe(self) -> list[str]:
        """Readable lines: one per memory, then the totals."""
        # EBR: the block RAM site of both families (on ECP5 a DP16KD or a PDPW16KD)
        unit = {"block_ram": "EBR", "spram": "SPRAM"}
        lines = []
        for p in self.placements:
            how = "loaded at run time" if p.loaded else "initialised"
            lines.append(f"{p.memory:<44} {p.depth:>6} x {p.width:<3} -> {p.blocks:>3} "
                         f"{p.primitive or unit[p.where]:<8} ({how})")
        if self.block_ram_available is not None:
            prims = self.primitive_blocks
            inst = sum(prims.values())
            lines.append(f"planned {self.block_ram_used}/{self.block_ram_available} {unit['block_ram']}"
                         + (f" ({inst} instantiated: {', '.join(f'{n} {k}' for k, n in prims.items())}; "
                            f"{self.block_ram_used - inst} for memories synthesis maps)" if prims else "")
                         + (f", {self.spram_used}/{self.spram_available} SPRAM" if self.spram_available else ""))
        for name in self.not_movable:
            lines.append(f"{name}: no run-time load path for this layer's cell/topology, stays in block RAM")
        return lines


def design_memories(model: Model) -> list[tuple[str, int, int]]:
    """``(name, depth, width)`` of every memory in the elaborated accelerator of ``model`` (no loaded ones)."""
    return [(name, depth, width) for name, depth, width, _ in _memories(model)]


def _memories(model: Model) -> list[tuple[str, int, int, bool]]:
    """:func:`design_memories` with a fourth field: the memory is a
    :func:`~rnnaccel.hdl.dsp.registered_rom` table.

    The design is elaborated as plain Amaranth (no :func:`~rnnaccel.hdl.dsp.dsp_primitives`), where
    every table is a :class:`~amaranth.lib.memory.Memory` and the walk sees its depth and width;
    ``registered_rom`` marks the contents of the memories it builds
    (:func:`~rnnaccel.hdl.dsp.is_registered_rom`), so the plan tells them from the other read-only
    memories (small tables, peephole weights: plain memories on every target) without relying on names or
    on a depth range, and applies to them the rule that decides the primitives on ECP5
    (:func:`~rnnaccel.hdl.dsp.rom_config`).
    """
    from amaranth.hdl import Fragment, Shape
    from amaranth.hdl._mem import MemoryInstance

    from .dsp import is_registered_rom
    from .top import Accelerator

    out = []

    def walk(frag, path):
        if isinstance(frag, MemoryInstance):
            d = frag._data
            out.append((".".join(path), int(d.depth), Shape.cast(d.shape).width, is_registered_rom(d)))
        for sub, name, *_ in frag.subfragments:
            walk(sub, path + [str(name)])

    walk(Fragment.get(Accelerator(model), None), [])
    return out


def loadable_layers(model: Model) -> list[int]:
    """Layers whose weight memories can be loaded at run time (their engine is RecurrentLayer)."""
    from .layer import LAYER_CLASSES
    if model.bidirectional:
        return []
    return [k for k in range(model.num_layers)
            if not (model.proj_size or model.cell == "jordan" or model.cell in LAYER_CLASSES)]


def _weight_name(k: int, p: int) -> str:
    return f"network.layer{k}.mvu.weights{p}"


def plan_memories(model: Model, target: str | None = None, *, family: str | None = None,
                  block_rams: int | None = None, sprams: int | None = None, storage: str = "auto") -> MemoryPlan:
    """Choose block RAM or SPRAM for every memory of ``model``'s accelerator on ``target``.

    Parameters
    ----------
    model : Model
    target : str, optional
        Target name; None gives the plain plan (every memory initialised block RAM).
    family : {"ice40", "ecp5"}, block_rams, sprams : optional
        The target's family, block RAM count and SPRAM count (:data:`FAMILY_SPRAMS` by default).
    storage : {"auto", "rom", "spram"}
        ``auto``: SPRAM for weights only where block RAM is short; ``rom``: never; ``spram``:
        every weight memory that can move.

    Raises
    ------
    ValueError
        For an unknown ``storage``, or ``storage="spram"`` on a part without SPRAM.
    """
    if storage not in STORAGE_CHOICES:
        raise ValueError(f"storage must be one of {', '.join(STORAGE_CHOICES)}, got {storage!r}")
    if target is None:
        if storage == "spram":
            raise ValueError("storage='spram' needs a target with SPRAM (ice40-up5k)")
        return MemoryPlan(None, None)
    if family is None:
        raise ValueError(f"plan_memories needs the family of target {target!r}")
    sprams = FAMILY_SPRAMS.get(target, 0) if sprams is None else sprams
    if storage == "spram" and not sprams:
        raise ValueError(f"storage='spram': the {target} has no SPRAM; use 'auto' or 'rom'")
    found = _memories(model)
    mems = [(name, depth, width) for name, depth, width, _ in found]
    # ECP5: registered_rom tables become the DP16KD/PDPW16KD of rom_config in the Verilog of
    # `generate --target ecp5-*` and of the synthesis flow (both convert under dsp_primitives("ecp5");
    # a board build does not, and Yosys maps the same tables itself); every other memory is left to
    # synthesis and counted at the cheapest aspect ratio.
    from .dsp import rom_config
    prims = {name: cfg for name, depth, width, rom in found
             if family == "ecp5" and rom and (cfg := rom_config(depth, width)) is not None}
    blocks = {name: prims[name].blocks if name in prims else block_ram_blocks(depth, width, family)
              for name, depth, width in mems}
    demand = sum(blocks.values())
    candidates = {_weight_name(k, p): (k, p) for k in loadable_layers(model) for p in range(model.pe)}
    movable = [(name, depth, width) for name, depth, width in mems
               if name in candidates and spram_blocks(depth, width) is not None]
    movable.sort(key=lambda t: (-blocks[t[0]], candidates[t[0]]))
    moved, free = {}, sprams
    for name, depth, width in movable:
        if storage == "rom" or (storage == "auto" and block_rams is not None and demand <= block_rams):
            break
        need = spram_blocks(depth, width)
        if need <= free:
            moved[name] = need
            free -= need
            demand -= blocks[name]
    not_movable = ()
    if storage != "rom" and block_rams is not None and demand > block_rams:
        weights = [name for name, _, _ in mems if ".mvu.weights" in name and name not in candidates]
        not_movable = tuple(weights)
    placements = tuple(
        Placement(name, depth, width, "spram", moved[name], loaded=True) if name in moved
        else Placement(name, depth, width, "block_ram", blocks[name],
                       primitive=prims[name].primitive if name in prims else None)
        for name, depth, width in mems)
    loaded = tuple(sorted(candidates[name] for name in moved))
    return MemoryPlan(target, family, placements, loaded, block_rams, sprams, not_movable)


def weight_image(model: Model, plan: MemoryPlan) -> np.ndarray:
    """The weight codes the accelerator takes through ``w_stream`` after reset, in order: for every
    loaded memory of ``plan.loaded`` (layer, PE), its words from address 0, each word's SIMD lanes
    from lane 0. Empty if nothing is loaded."""
    from .layer import layer_banks
    out = []
    for k, p in plan.loaded:
        w_banks, _ = layer_banks(model.layer(k))
        out.append(w_banks[p].reshape(-1))
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
