"""Every register-to-register endpoint's arrival time, from nextpnr's post-route SDF.

nextpnr reports one critical path per clock; closing timing one path per place-and-route run is
slow. nextpnr also writes the routed design's delays as SDF (``--sdf``): the cells' delays
(``IOPATH``, clock-to-output arcs from a clock port), the routed nets' delays
(``INTERCONNECT``) and the setup checks (``SETUPHOLD``). :func:`endpoint_report` propagates the
latest arrival from every clock-to-output arc through the nets and the combinational cell arcs
to every setup check, and groups the endpoints by register (the bits of one signal, as Yosys and
nextpnr name their cells), worst first. Paths from and to the top-level ports are not included
(nextpnr reports them as cross-domain ``<async>`` paths).

On the designs checked (iCE40 UP5K, ECP5) the worst arrival equals nextpnr's own critical path
to within rounding (the synth tests compare them); one clock domain is assumed.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

__all__ = ["parse_sdf", "endpoint_report"]

_TOKEN = re.compile(r'\(|\)|"[^"]*"|(?:\\.|[^\s()\\])+')


def _tree(text: str) -> list:
    stack: list[list] = [[]]
    for tok in _TOKEN.findall(text):
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) < 2:
                raise ValueError("unbalanced parentheses in the SDF")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    if len(stack) != 1 or not stack[0]:
        raise ValueError("not an SDF file (unbalanced or empty)")
    return stack[0][0]


def _unescape(name: str) -> str:
    return re.sub(r"\\(.)", r"\1", name)


def _delay_ns(triples, timescale_ns: float) -> float:
    """The largest max value of ``(min:typ:max)`` triples, in ns."""
    worst = 0.0
    for t in triples:
        if isinstance(t, list) and t:
            for v in str(t[0]).split(":"):
                if v:
                    worst = max(worst, float(v) * timescale_ns)
    return worst


def _port(item) -> str:
    """``PORT`` or ``(posedge PORT)``."""
    return _unescape(item[-1] if isinstance(item, list) else item)


def parse_sdf(text: str) -> dict:
    """The timing graph of an SDF file: ``{"clock_to_out": {(cell, port): ns}, "comb": {(cell,
    in): [(out, ns)]}, "nets": {(cell, port): [((cell, port), ns)]}, "setup": {(cell, port): ns}}``."""
    tree = _tree(text)
    if not tree or tree[0] != "DELAYFILE":
        raise ValueError("not an SDF file (no DELAYFILE)")
    divider, timescale = ".", 1e-3
    cells = []
    for item in tree[1:]:
        if not isinstance(item, list) or not item:
            continue
        if item[0] == "DIVIDER" and len(item) > 1:
            divider = item[1]
        elif item[0] == "TIMESCALE" and len(item) > 1:
            m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ps|ns|us)", "".join(item[1:]))
            if not m:
                raise ValueError(f"unsupported SDF TIMESCALE {' '.join(item[1:])}")
            timescale = float(m.group(1)) * {"ps": 1e-3, "ns": 1.0, "us": 1e3}[m.group(2)]
        elif item[0] == "CELL":
            cells.append(item)
    clock_to_out: dict = {}
    comb: dict = defaultdict(list)
    nets: dict = defaultdict(list)
    setup: dict = {}
    for cell in cells:
        inst = ""
        for it in cell[1:]:
            if isinstance(it, list) and it and it[0] == "INSTANCE":
                inst = _unescape(it[1]) if len(it) > 1 else ""
        clocks = set()
        for it in cell[1:]:
            if isinstance(it, list) and it and it[0] == "TIMINGCHECK":
                for chk in it[1:]:
                    if chk and chk[0] in ("SETUP", "SETUPHOLD") and len(chk) >= 4:
                        clk = _port(chk[2])
                        clocks.add(clk)
                        key = (inst, _port(chk[1]))
                        setup[key] = max(setup.get(key, 0.0), _delay_ns(chk[3:4], timescale))
        for it in cell[1:]:
            if not (isinstance(it, list) and it and it[0] == "DELAY"):
                continue
            for block in it[1:]:
                for arc in block[1:]:
                    if not arc or len(arc) < 4:
                        continue
                    if arc[0] == "IOPATH":
                        src, dst, d = _port(arc[1]), _unescape(arc[2]), _delay_ns(arc[3:], timescale)
                        if isinstance(arc[1], list) or src in clocks:
                            key = (inst, dst)
                            clock_to_out[key] = max(clock_to_out.get(key, 0.0), d)
                        else:
                            comb[(inst, src)].append((dst, d))
                    elif arc[0] == "INTERCONNECT":
                        a, b = _unescape(arc[1]), _unescape(arc[2])
                        if divider not in a or divider not in b:
                            continue
                        ai, ap = a.rsplit(divider, 1)
                        bi, bp = b.rsplit(divider, 1)
                        if inst:
                            ai, bi = f"{inst}{divider}{ai}", f"{inst}{divider}{bi}"
                        nets[(ai, ap)].append(((bi, bp), _delay_ns(arc[3:], timescale)))
    return {"clock_to_out": clock_to_out, "comb": dict(comb), "nets": dict(nets), "setup": setup}


def _group(cell: str) -> str:
    """The register an endpoint cell belongs to: its name without the packing suffixes and bit
    numbers nextpnr and Yosys add (``x_SB_DFFE_Q_3_D_SB_LUT4_O_LC`` -> ``x``)."""
    name = re.sub(r"(_(SB|TRELLIS|DFF|LC|SLICE|Q|D|E|R|S|\d+)\b.*)$", "", cell)
    name = re.sub(r"_(SB|TRELLIS)_.*$", "", name)
    return re.sub(r"\[\d+\]$", "", name) or cell


def endpoint_report(sdf, period_ns: float, groups: int = 20) -> dict:
    """Arrival times of every endpoint of a routed design (see the module).

    Parameters
    ----------
    sdf : path or str
        nextpnr's ``--sdf`` output (a path, or the text).
    period_ns : float
        The clock period to compare with (the ``--freq`` constraint).
    groups : int
        How many endpoint groups (registers) to list, worst first.

    Returns
    -------
    dict
        ``endpoints`` (setup checks reached from a register), ``failing`` (endpoints whose
        arrival plus setup exceeds ``period_ns``), ``failing_groups``, ``worst_ns``, and ``worst``:
        a list of ``{"endpoint", "group", "arrival_ns", "slack_ns", "start", "cells"}`` (the first
        endpoint of each group; ``cells`` the logic cells on its path).
    """
    text = sdf if isinstance(sdf, str) and "DELAYFILE" in sdf[:200] else Path(sdf).read_text()
    g = parse_sdf(text)
    fanin_net = {}
    for drv, sinks in g["nets"].items():
        for sink, d in sinks:
            if sink not in fanin_net or fanin_net[sink][1] < d:
                fanin_net[sink] = (drv, d)
    fanin_cell = defaultdict(list)
    for (inst, ip), outs in g["comb"].items():
        for op, d in outs:
            fanin_cell[(inst, op)].append(((inst, ip), d))
    arrival: dict = {}

    def preds(p):
        out = [fanin_net[p]] if p in fanin_net else []
        return out + fanin_cell.get(p, [])

    def at(pin):
        """Latest arrival at ``pin`` (iterative depth-first search: netlists have tens of
        thousands of pins); a predecessor still being searched is a combinational loop, cut there."""
        stack, open_ = [(pin, False)], set()
        while stack:
            p, expanded = stack.pop()
            if p in arrival or (not expanded and p in open_):
                continue
            if not expanded:
                open_.add(p)
                stack.append((p, True))
                stack.extend((q, False) for q, _ in preds(p) if q not in arrival and q not in open_)
                continue
            open_.discard(p)
            best, prev = g["clock_to_out"].get(p, float("-inf")), None
            for q, d in preds(p):
                if q in arrival and arrival[q][0] + d > best:
                    best, prev = arrival[q][0] + d, q
            arrival[p] = (best, prev)
        return arrival[pin][0]

    ends = []
    for pin, su in g["setup"].items():
        a = at(pin)
        if a != float("-inf"):
            ends.append((a + su, pin))
    ends.sort(key=lambda e: -e[0])
    failing = [e for e in ends if e[0] > period_ns]
    worst, seen = [], set()
    for a, pin in ends:
        grp = _group(pin[0])
        if grp in seen:
            continue
        seen.add(grp)
        if len(worst) < groups:
            path, p = [], pin
            while p is not None and p in arrival:
                path.append(p)
                p = arrival[p][1]
            cells = []
            for c, _ in reversed(path):
                if not cells or cells[-1] != c:
                    cells.append(c)
            worst.append({"endpoint": f"{pin[0]}.{pin[1]}", "group": grp, "arrival_ns": round(a, 3),
                          "slack_ns": round(period_ns - a, 3), "start": cells[0] if cells else None,
                          "cells": len(cells)})
    return {"endpoints": len(ends), "failing": len(failing),
            "failing_groups": len({_group(p[0]) for _, p in failing}),
            "worst_ns": round(ends[0][0], 3) if ends else None, "period_ns": round(period_ns, 3), "worst": worst}
