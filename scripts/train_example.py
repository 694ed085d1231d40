"""Train a built-in example model and write it to ``golden/examples/`` (needs torch).

Run from the project root as either of::

    .venv/bin/python -m rnnaccel.scripts.train_example [NAME ...]
    .venv/bin/python scripts/train_example.py [NAME ...] [--seed 3] [--steps 1000] [--out DIR]

Without a name it trains every example in turn. The task data come from
:mod:`rnnaccel.golden.examples` (NumPy, deterministic). Each example has a *recipe*
(:data:`RECIPES`): the PyTorch recurrent module (``nn.LSTM`` / ``nn.GRU`` with its layers and
directions), a linear head on every step's output (cross-entropy at every step), the optimiser
settings (AdamW on a one-cycle schedule, gradient clipping) and the hardware parallelism written
into the TOML. The trained module is converted with
:func:`rnnaccel.golden.torch_import.from_torch` (with ``head=`` the ``nn.Linear`` when the example
ships its head, so the hardware streams out class scores) and saved with
:func:`rnnaccel.golden.model.save` as ``<name>.toml`` + ``<name>.npz``, default 16-bit formats.
Seeds are fixed (torch and NumPy) and torch runs deterministic algorithms; with the same torch
version and thread count the weights come out the same: retrained with this script (torch 2.13,
CPU), all three examples are bit-identical to the shipped ``.npz`` files. The thread count is part
of the recipe (``count_mod4`` comes out differently with 1 thread than with the 2 it was made with).

Recipes (all: AdamW on a one-cycle schedule, gradient norm clipped to 5, cross-entropy on every
step; the held-out checks and error measurements that follow take about as long again):

``count_mod4``
    ``nn.LSTM(32, 32)`` + ``Linear(32, 4)``; only the LSTM ships (pe=4, simd=8). 1000 steps x batch
    128 x 50 steps, peak lr 1e-2, weight decay 1e-2, seed 3, 2 threads: about 10 s on 2 idle cores,
    15 s with 1 thread.
``gru_count_mod4``
    ``nn.GRU(32, 32)`` + ``Linear(32, 4)``; the head ships (head_size 4; pe=4, simd=8). 600 steps x
    batch 64 x 50 steps, peak lr 1e-2, weight decay 1e-2, label smoothing 0.1, seed 1, 1 thread:
    12 s. Label smoothing keeps the trained scores inside the ``data`` format's +-8, to which the
    head's output is requantised (largest 3.5).
``bigru_around_mod4``
    ``nn.GRU(8, 16, num_layers=2, bidirectional=True)`` + ``Linear(32, 16)``; the head ships
    (head_size 16; pe=2, simd=8: 104 multipliers, within the 156 of an ECP5-85k; max_len 64).
    800 steps x batch 64, every batch of one length drawn from 8-64 (no padding, so the backward
    direction always starts at a real end), peak lr 1e-2, weight decay 0.1, label smoothing 0.1,
    seed 0, 1 thread: 40 s of CPU. It is right at every step from about step 300 on. The weight
    decay of 0.1 (rather than 1e-2) keeps the update gates' pre-activations inside the sigmoid
    table's +-8 when they hold a state, which keeps the fixed-point error within 2**-7 (see
    :mod:`rnnaccel.golden.examples`); label smoothing keeps the scores within +-6.2.

At the end it checks the trained model against the numerics spec and reports: float accuracy on
held-out sequences; the accuracy of the bit-exact fixed-point golden model's class scores (the
shipped head, or for ``count_mod4`` the training head applied to the golden ``h``) and how often
its argmax equals the float model's; the largest ``|h_fixed - h_float|`` of every layer's outputs
(against the 2**-7 bound) and of the head's scores over many sequences of the longest length;
saturation events; weight statistics.

Choice of the ``count_mod4`` seed: the fixed-point error of a trained LSTM has a heavy tail. The
default formats make a per-step error of about 1e-3 in ``h`` (mostly the tanh table's index
resolution, 2**-9), and the recurrence amplifies it 2-5x in rare trajectories (here: long runs
of distractor symbols, during which the counter's hold state drifts). Whether the 2**-7 bound
holds on every sequence therefore depends on the training run. Over the same 6000 sequences of 50
steps, seeds 2 and 3 stayed within it, seeds 5 and 6 did not on 2 sequences each (worst 1.06e-2),
seeds 1 and 4 on 0.1-0.4 % of them (worst 1.4e-2). The shipped model is seed 3 (worst 6.7e-3 on
that set); on 10000 further sequences, not used for the choice, one was over (8.2e-3).
"""

from __future__ import annotations

import argparse
import time
import tomllib
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path

import numpy as np

from rnnaccel.golden import examples
from rnnaccel.golden.fixed import SaturationCounter, to_float
from rnnaccel.golden.model import Model, load, save
from rnnaccel.golden.network import run
from rnnaccel.golden.reference import layer_float
from rnnaccel.golden.torch_import import from_torch

#: Tensors whose saturation would be a real accuracy problem (table-input saturation is expected).
CRITICAL = ("input", "weight", "bias", "cell", "hidden", "gru_n", "head")
#: Bound on |h_fixed - h_float| (every layer's outputs) that a shipped example must meet.
BOUND = 2.0 ** -7


@dataclass(frozen=True)
class Recipe:
    """How an example is trained and what ships.

    Attributes
    ----------
    cell : {"lstm", "gru"}
        ``torch.nn.LSTM`` or ``torch.nn.GRU``.
    hidden_size, num_layers, bidirectional
        Of the recurrent module (the input size is the task's).
    ship_head : bool
        Ship the ``nn.Linear`` head in the model (``head_size`` = classes), so that the hardware
        outputs class scores; otherwise only the recurrent module ships.
    pe, simd, max_len
        Hardware parallelism and the longest sequence a bidirectional layer buffers.
    steps, batch, lengths, lr, weight_decay, label_smoothing, seed, threads
        Training: optimiser steps; sequences per batch; each batch's length is drawn uniformly
        from ``lengths`` (both included; a fixed length draws nothing); AdamW with a one-cycle
        schedule peaking at ``lr``; cross-entropy label smoothing; seeds; torch CPU threads.
    test_lengths : (int, int)
        Lengths of the held-out sequences; the fixed-vs-float error is measured on sequences of
        the longer one.
    """

    cell: str
    hidden_size: int
    num_layers: int = 1
    bidirectional: bool = False
    ship_head: bool = True
    pe: int = 4
    simd: int = 8
    max_len: int = 64
    steps: int = 1000
    batch: int = 128
    lengths: tuple[int, int] = (50, 50)
    lr: float = 1e-2
    weight_decay: float = 1e-2
    label_smoothing: float = 0.0
    seed: int = 3
    threads: int = 2
    test_lengths: tuple[int, int] = (10, 50)


RECIPES: dict[str, Recipe] = {
    "count_mod4": Recipe("lstm", 32, ship_head=False),
    "gru_count_mod4": Recipe("gru", 32, steps=600, batch=64, label_smoothing=0.1, seed=1, threads=1),
    "bigru_around_mod4": Recipe("gru", 16, num_layers=2, bidirectional=True, pe=2, steps=800, batch=64,
                                lengths=(8, 64), weight_decay=0.1, label_smoothing=0.1, seed=0, threads=1,
                                test_lengths=(10, 64)),
}


def _module(recipe: Recipe, input_size: int):
    import torch
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[recipe.cell]
    return cls(input_size, recipe.hidden_size, num_layers=recipe.num_layers,
               bidirectional=recipe.bidirectional, batch_first=True)


def _torch_scores(rnn, head, xs):
    """Head outputs at every step of variable-length sequences (batched by length: no padding)."""
    import torch
    out = [None] * len(xs)
    by_length: dict[int, list[int]] = {}
    for i, x in enumerate(xs):
        by_length.setdefault(len(x), []).append(i)
    with torch.no_grad():
        for idx in by_length.values():
            x = torch.from_numpy(np.stack([xs[i] for i in idx]).astype(np.float32))
            y = head(rnn(x)[0]).double().numpy()
            for j, i in enumerate(idx):
                out[i] = y[j]
    return out


def _accuracy(scores, labels) -> tuple[float, float]:
    """(accuracy over all steps, accuracy at the last step) of lists of (T_i, K) and (T_i,)."""
    every = np.concatenate([s.argmax(-1) == y for s, y in zip(scores, labels)])
    last = np.array([s[-1].argmax() == y[-1] for s, y in zip(scores, labels)])
    return float(every.mean()), float(last.mean())


def float_layers(model, x) -> tuple[list[np.ndarray], np.ndarray]:
    """Float64 outputs of every layer (``[forward; backward]``) and the model's output.

    The same computation as :func:`rnnaccel.golden.reference.network_float`, keeping the
    intermediate layers, to compare each with the golden model's ``layer_outputs``.
    """
    seq = np.asarray(x, dtype=np.float64)
    outs = []
    for directions in model.layers():
        parts = []
        for d, layer in enumerate(directions):
            y, _ = layer_float(layer, seq if d == 0 else seq[::-1])
            parts.append(y if d == 0 else y[::-1])
        seq = np.concatenate(parts, axis=1)
        outs.append(seq)
    if model.head_size:
        seq = seq @ model.weights["head.weight"].T + model.weights["head.bias"]
    return outs, seq


def compare(model, x, sat: SaturationCounter | None = None) -> dict:
    """Run ``x`` through the golden and the float model: outputs and the largest differences."""
    r = run(model, x)
    if sat is not None:
        sat.update(r.saturation)
    layers, y_float = float_layers(model, x)
    h_err = max(float(np.abs(to_float(hq, model.formats.data) - hf).max())
                for hq, hf in zip(r.layer_outputs, layers))
    return {"fixed": r.h, "float": y_float, "h_err": h_err, "y_err": float(np.abs(r.h - y_float).max()),
            "result": r}


def _save_minimal(model, path: Path) -> Path:
    """:func:`rnnaccel.golden.model.save`, then drop the ``[model]`` options that have their
    default value (e.g. ``outputs = "sequence"``): the shipped TOML names only what it sets, like
    a hand-written one, and still loads if options are added to or renamed in the model later."""
    toml = save(model, path)
    defaults = {f.name: f.default for f in fields(Model) if f.default is not MISSING}
    keep, section = [], None
    for line in toml.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
        elif section == "[model]" and "=" in stripped:
            key = stripped.split("=", 1)[0].strip()
            if key in defaults and key not in ("cell", "input_size", "hidden_size"):
                value = tomllib.loads(stripped)[key]
                if value == defaults[key] and type(value) is type(defaults[key]):
                    continue
        keep.append(line)
    toml.write_text("\n".join(keep) + "\n")
    again = load(toml)
    assert again.summary() == model.summary(), "the shipped TOML does not load back as the model"
    assert all(np.array_equal(again.weights[k], v) for k, v in model.weights.items())
    return toml


def train(name: str = "count_mod4", *, steps: int | None = None, batch: int | None = None,
          lr: float | None = None, weight_decay: float | None = None, label_smoothing: float | None = None,
          seed: int | None = None, threads: int | None = None, n_test: int = 1000, n_golden: int = 200, n_drift: int = 1000,
          out: Path | None = None, log=print) -> dict:
    """Train the example ``name`` after its recipe (keyword arguments override it), check it
    with the golden model and save it.

    Returns
    -------
    dict
        The final metrics (also printed): training loss and time, float and fixed-point
        accuracies, argmax agreement, the largest ``|h_fixed - h_float|`` and
        ``|y_fixed - y_float|`` over ``n_drift`` sequences, saturation events.
    """
    import torch

    recipe = RECIPES[name]
    overrides = {k: v for k, v in dict(steps=steps, batch=batch, lr=lr, weight_decay=weight_decay,
                                       label_smoothing=label_smoothing, seed=seed, threads=threads).items() if v is not None}
    recipe = replace(recipe, **overrides)
    torch.manual_seed(recipe.seed)
    torch.set_num_threads(recipe.threads)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(recipe.seed + 1)

    X = examples.batch(name, 1, 1)[0].shape[-1]
    H, K = recipe.hidden_size, examples.n_classes(name)
    D = 2 if recipe.bidirectional else 1
    rnn = _module(recipe, X)
    head = torch.nn.Linear(D * H, K)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=recipe.lr / 10, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=recipe.steps)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)

    lo, hi = recipe.lengths
    val_x, val_y = examples.dataset(name, 500, min_len=lo, max_len=hi, seed=recipe.seed + 2)

    arch = (f"{recipe.cell.upper()}({X}, {H}" + (f", num_layers={recipe.num_layers}" if recipe.num_layers > 1 else "")
            + (", bidirectional" if recipe.bidirectional else "") + ")")
    log(f"training {name}: {arch} + Linear({D * H}, {K}) on every step"
        f" ({'shipped' if recipe.ship_head else 'not shipped'}); {recipe.steps} steps x batch {recipe.batch} x "
        f"{lo if lo == hi else f'{lo}-{hi}'} time steps, AdamW (one-cycle, peak lr {recipe.lr}, weight decay "
        f"{recipe.weight_decay}), label smoothing {recipe.label_smoothing}, seed {recipe.seed}, "
        f"{recipe.threads} thread(s)")
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(1, recipe.steps + 1):
        length = hi if lo == hi else int(rng.integers(lo, hi + 1))
        x, y = examples.batch(name, recipe.batch, length, rng=rng)
        logits = head(rnn(torch.from_numpy(x.astype(np.float32)))[0])        # (B, T, K)
        loss = loss_fn(logits.reshape(-1, K), torch.from_numpy(y).reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == recipe.steps:
            every, last = _accuracy(_torch_scores(rnn, head, val_x), val_y)
            log(f"  step {step:5d}  loss {loss.item():.4f}  validation accuracy: every step {every:.4f}, "
                f"last step {last:.4f}  ({time.perf_counter() - t0:.1f} s)")
    train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
    rnn.eval()

    # -- held-out evaluation in float (torch) ------------------------------------------------------
    tlo, thi = recipe.test_lengths
    xs, ys = examples.dataset(name, n_test, min_len=tlo, max_len=thi, seed=recipe.seed + 1000)
    acc_every, acc_last = _accuracy(_torch_scores(rnn, head, xs), ys)

    # -- the shipped model, the float reference and the fixed-point golden model ------------------
    model = from_torch(rnn, head=head if recipe.ship_head else None, pe=recipe.pe, simd=recipe.simd, name=name)
    model = replace(model, max_len=recipe.max_len, weights=dict(model.weights))
    if recipe.ship_head:
        def scores(y):
            return y
    else:           # count_mod4: the training head applied to the golden model's h
        hw, hb = head.weight.detach().double().numpy(), head.bias.detach().double().numpy()

        def scores(y):
            return y @ hw.T + hb
    sat = SaturationCounter()
    fixed_scores, ref_scores = [], []
    for x in xs[:n_golden]:
        c = compare(model, x, sat)
        fixed_scores.append(scores(c["fixed"]))
        ref_scores.append(scores(c["float"]))
    fixed_every, fixed_last = _accuracy(fixed_scores, ys[:n_golden])
    ref_every, ref_last = _accuracy(ref_scores, ys[:n_golden])
    agree = float(np.mean(np.concatenate([a.argmax(-1) == b.argmax(-1) for a, b in zip(fixed_scores, ref_scores)])))

    h_err, y_err, c_max = [], [], 0.0
    for x in examples.inputs(name, n_drift, min_len=thi, max_len=thi, seed=recipe.seed + 2000):
        c = compare(model, x, sat)
        h_err.append(c["h_err"])
        y_err.append(c["y_err"])
        if c["result"].c is not None:
            c_max = max(c_max, float(np.abs(c["result"].c).max()))
    h_err, y_err = np.array(h_err), np.array(y_err)
    n_over = int(np.sum(h_err > BOUND))

    w_all = np.concatenate([v.ravel() for k, v in model.weights.items() if k.startswith("weight")])
    w_head = model.weights.get("head.weight")

    out = Path(out) if out is not None else examples.path(name).parent
    toml = _save_minimal(model, out / f"{name}.toml")

    n_g = min(n_golden, n_test)
    log(f"trained in {train_s:.1f} s ({train_cpu:.1f} s CPU); final training loss {loss.item():.4f}")
    log(f"held-out, {n_test} sequences of {tlo}-{thi} steps, float (torch): accuracy {acc_every:.4f} over all "
        f"steps, {acc_last:.4f} at the last step")
    log(f"first {n_g} of them{'' if recipe.ship_head else ' through the training head'}: float reference "
        f"{ref_every:.4f} / {ref_last:.4f}, fixed-point golden model {fixed_every:.4f} / {fixed_last:.4f} "
        f"(all steps / last step); argmax fixed == float at {agree:.4f} of the steps")
    log(f"max |h_fixed - h_float| (every layer) over {n_drift} sequences of {thi} steps = {h_err.max():.3e} "
        f"(2**-7 = {BOUND:.3e}; {n_over} sequence(s) over it; per-sequence max: median "
        f"{np.median(h_err):.2e}, 99th percentile {np.quantile(h_err, 0.99):.2e})")
    if recipe.ship_head:
        log(f"max |y_fixed - y_float| of the head's scores = {y_err.max():.3e} (median {np.median(y_err):.2e}, "
            f"99th percentile {np.quantile(y_err, 0.99):.2e}); max |y| = "
            f"{max(float(np.abs(s).max()) for s in ref_scores):.2f} (data format {model.formats.data}, "
            f"range +-{-model.formats.data.min_value:g})")
    if c_max:
        log(f"max |c_fixed| = {c_max:.2f} (cell format {model.formats.cell}, range +-{-model.formats.cell.min_value:g})")
    log(f"saturation events (table inputs are expected to saturate): {sat.report()}")
    log(f"recurrent weights: max |w| = {np.abs(w_all).max():.3f}, {100 * np.mean(np.abs(w_all) > 1):.2f} % with "
        f"|w| > 1, rms {np.sqrt(np.mean(w_all ** 2)):.3f}"
        + ("" if w_head is None else f"; head: max |w| = {np.abs(w_head).max():.3f}, rms "
                                     f"{np.sqrt(np.mean(w_head ** 2)):.3f}"))
    critical = {k: sat[k] for k in CRITICAL if sat[k]}
    ok = n_over == 0 and not critical
    log(f"numerics check: {'PASS' if ok else 'FAIL'} (|h_fixed - h_float| <= 2**-7 at every step of "
        f"these sequences, no saturation of {', '.join(CRITICAL)})")
    log(f"wrote {toml} ({toml.stat().st_size} bytes) and {toml.with_suffix('.npz')} "
        f"({toml.with_suffix('.npz').stat().st_size} bytes)")
    return {"ok": ok, "loss": loss.item(), "acc_every": acc_every, "acc_last": acc_last,
            "ref_every": ref_every, "fixed_every": fixed_every, "fixed_last": fixed_last, "agreement": agree,
            "max_h_error": float(h_err.max()), "max_y_error": float(y_err.max()),
            "sequences_over_bound": n_over, "max_c": c_max,
            "saturation": dict(sat), "critical_saturation": critical,
            "train_seconds": train_s, "train_cpu_seconds": train_cpu, "path": toml}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="examples and their recipes: " + "; ".join(
                                     f"{n}: {r.cell} H={r.hidden_size} layers={r.num_layers}"
                                     f"{' bidirectional' if r.bidirectional else ''}, {r.steps} steps, seed {r.seed}, {r.threads} thread(s)"
                                     for n, r in RECIPES.items()))
    ap.add_argument("names", nargs="*", metavar="NAME",
                    help=f"examples to train (default: all): {', '.join(RECIPES)}")
    ap.add_argument("--name", action="append", default=[], choices=list(RECIPES),
                    help="same as a positional NAME (may be repeated)")
    ap.add_argument("--steps", type=int, help="optimiser steps (default: the recipe's)")
    ap.add_argument("--batch", type=int, help="sequences per batch (default: the recipe's)")
    ap.add_argument("--lr", type=float, help="peak learning rate of the one-cycle schedule")
    ap.add_argument("--weight-decay", type=float, help="AdamW decoupled weight decay")
    ap.add_argument("--label-smoothing", type=float, help="cross-entropy label smoothing")
    ap.add_argument("--seed", type=int, help="seed of torch and NumPy (default: the recipe's)")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: the recipe's: 2 for count_mod4, 1 for the others)")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default: the package's golden/examples/, overwriting the shipped files)")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in RECIPES]
    if unknown:
        ap.error(f"unknown example(s) {', '.join(map(repr, unknown))}; choose from {', '.join(RECIPES)}")
    names = list(dict.fromkeys(list(args.names) + args.name)) or list(RECIPES)
    results = {}
    for name in names:
        results[name] = train(name, steps=args.steps, batch=args.batch, lr=args.lr,
                              weight_decay=args.weight_decay,
                              label_smoothing=args.label_smoothing, seed=args.seed, threads=args.threads, out=args.out)
    return results


if __name__ == "__main__":
    main()
