"""Host side of the UART link to a board built by ``rnnaccel build-board``.

::

    from rnnaccel import load
    from rnnaccel.host import Host
    model = load("build/model.toml")
    with Host("/dev/ttyUSB1", model, baud=115200) as host:
        outputs = host.run([x_codes_0, x_codes_1])   # per sequence: (T, Y) codes, as golden run_codes
        host.final_states                            # with final_state: h_n / c_n per sequence

The protocol (frames of a header byte and packed codes, in both directions) is defined in
:mod:`rnnaccel.hdl.uart`. This module holds its software half:

- :func:`encode_sequence` / :func:`decode_outputs`: pure encoder and decoder (no serial port),
  :class:`OutputDecoder` the incremental decoder; :func:`decode_inputs` is the software twin of
  the device's :class:`~rnnaccel.hdl.uart.InputDeframer` (for tests and fakes).
- :func:`plan_transfers`: when each piece may be sent (flow control, see below).
- :class:`Host`: the two over a pyserial port.

Flow control
------------
The UART has no backpressure, so the host must not send more than the device can buffer
(``fifo_depth`` bytes, :attr:`~rnnaccel.hdl.uart.LinkFormat.fifo_depth` by default). Every input
frame whose output has not come back yet may still sit in that buffer, so:

- models that answer every timestep (``outputs = "sequence"``, not bidirectional): at most
  ``window = fifo_depth // largest input frame`` frames are sent ahead of their outputs;
- models that answer at the end of a sequence (``outputs = "last"``, or bidirectional, which
  buffers the whole sequence): a sequence is sent once every output of the previous one has come
  back. The accelerator then takes the sequence as fast as it arrives (its output side is empty).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from rnnaccel.golden.model import Model
from rnnaccel.hdl.uart import (HEADER_LAST, HEADER_STATE, IN_HEADER, OUT_HEADER, WEIGHT_HEADER, LinkFormat,
                               link_format)

__all__ = ["Host", "LinkError", "LinkTimeout", "encode_frame", "encode_sequence", "encode_weights", "decode_outputs",
           "decode_inputs", "OutputDecoder", "OutputFrame", "plan_transfers", "expected_outputs", "link_format", "LinkFormat"]


class LinkError(RuntimeError):
    """The device sent bytes that are not valid frames, or outputs that do not match the inputs."""


class LinkTimeout(LinkError, TimeoutError):
    """No answer from the device within the timeout."""


# -- packing ---------------------------------------------------------------------------------------------

def _pack(fields, nbytes: int) -> bytes:
    """Fields ``(codes, width)`` packed back to back, element ``k`` of a field at ``k*width``, LSB first."""
    v, shift = 0, 0
    for codes, width in fields:
        mask = (1 << width) - 1
        for c in np.asarray(codes, dtype=np.int64).reshape(-1).tolist():
            v |= (c & mask) << shift
            shift += width
    return v.to_bytes(nbytes, "little")


def _unpack(data: bytes, counts_widths) -> list[np.ndarray]:
    """Inverse of :func:`_pack`: signed codes of each ``(count, width)`` field."""
    v = int.from_bytes(bytes(data), "little")
    out, shift = [], 0
    for n, width in counts_widths:
        mask, half = (1 << width) - 1, 1 << (width - 1)
        codes = []
        for _ in range(n):
            c = (v >> shift) & mask
            codes.append(c - (1 << width) if c >= half else c)
            shift += width
        out.append(np.array(codes, dtype=np.int64))
    return out


def _check_model(model):
    if not isinstance(model, Model):
        raise TypeError(f"expected a rnnaccel Model, got {type(model).__name__}")


def _state_counts(model: Model) -> tuple[int, int]:
    """(layers x directions, whether there is a cell state)."""
    return model.num_layers * model.directions, model.cell_spec.has_cell_state


def _check_codes(a, fmt, what: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "iu":
        if a.size and not np.all(np.equal(np.mod(a, 1), 0)):
            raise ValueError(f"{what} must be integer codes, got {a.dtype} values")
        a = a.astype(np.int64)
    a = a.astype(np.int64)
    if a.size and not fmt.contains(a).all():
        bad = a[~fmt.contains(a)].reshape(-1)[0]
        raise ValueError(f"{what}: code {int(bad)} is outside the format {fmt}")
    return a


def _state_arrays(model: Model, h0, c0):
    """Validated ``(h0, c0)`` as (layers x directions, size) arrays; zeros where None."""
    n, has_c = _state_counts(model)
    if not model.initial_state:
        if h0 is not None or c0 is not None:
            raise ValueError(f"model {model.name!r} has no initial_state: h0/c0 cannot be sent")
        return None, None
    if c0 is not None and not has_c:
        raise ValueError(f"a {model.cell} model has no cell state: c0 cannot be sent")
    out = []
    for value, size, fmt, what in ((h0, model.state_size, model.formats.data, "h0"),
                                   (c0, model.hidden_size, model.formats.cell, "c0")):
        if what == "c0" and not has_c:
            out.append(None)
            continue
        if value is None:
            out.append(np.zeros((n, size), dtype=np.int64))
            continue
        a = _check_codes(value, fmt, what)
        if a.shape == (size,) and n == 1:
            a = a[None]
        if a.shape != (n, size):
            raise ValueError(f"{what} must have shape ({n}, {size}) (layers x directions, state), got {a.shape}")
        out.append(a)
    return out[0], out[1]


# -- encoder ---------------------------------------------------------------------------------------------

def encode_frame(model: Model, x, last: bool, h0=None, c0=None) -> bytes:
    """One host-to-device frame: header, ``x_t`` and, if ``h0`` (or ``c0``) is given, the state.

    ``x`` has ``X`` codes in ``data``; ``h0`` / ``c0`` as in :func:`encode_sequence` (with the
    state flag set even if only one of them is given: the other is sent as zeros).
    """
    _check_model(model)
    fmt = link_format(model)
    x = _check_codes(x, model.formats.data, "x")
    if x.shape != (model.input_size,):
        raise ValueError(f"x_t must have {model.input_size} codes, got shape {x.shape}")
    header = IN_HEADER | (HEADER_LAST if last else 0)
    body = _pack([(x, fmt.code_width)], fmt.x_bytes)
    if h0 is None and c0 is None:
        return bytes([header]) + body
    h0, c0 = _state_arrays(model, h0, c0)
    fields = [(h0, fmt.code_width)] + ([(c0, fmt.cell_width)] if c0 is not None else [])
    return bytes([header | HEADER_STATE]) + body + _pack(fields, fmt.state_bytes)


def encode_sequence(model: Model, x_codes, h0=None, c0=None) -> bytes:
    """The frames of one sequence: ``x_codes`` (T, X) in ``data``, ``last`` on the final one.

    Parameters
    ----------
    model : Model
    x_codes : array_like of int, shape (T, X)
    h0, c0 : array_like of int, shape (layers * directions, H) or (H,) for one layer, optional
        Initial states (``data`` / ``cell`` codes) for models with ``initial_state``. Such models
        always get the state on the first frame (zeros where not given, as
        :func:`rnnaccel.golden.network.run_codes` assumes); others must not be given any.

    Returns
    -------
    bytes
        ``T`` frames: header ``0xA0 | S << 1 | L`` and the packed codes (:mod:`rnnaccel.hdl.uart`).
    """
    _check_model(model)
    x = _check_codes(x_codes, model.formats.data, "x_codes")
    if x.ndim != 2 or x.shape[1] != model.input_size or len(x) == 0:
        raise ValueError(f"x_codes must have shape (T, {model.input_size}) with T >= 1, got {x.shape}")
    if model.bidirectional and len(x) > model.max_len:
        raise ValueError(f"a bidirectional model buffers at most max_len = {model.max_len} steps, "
                         f"the sequence has {len(x)}")
    h0, c0 = _state_arrays(model, h0, c0)
    frames = []
    for t, row in enumerate(x):
        last = t == len(x) - 1
        if t == 0 and model.initial_state:
            frames.append(encode_frame(model, row, last, h0=h0, c0=c0))
        else:
            frames.append(encode_frame(model, row, last))
    return b"".join(frames)


def encode_weights(model: Model, image) -> bytes:
    """The weight frame: header ``0xC0`` and every code of ``image``
    (:func:`rnnaccel.hdl.memory_plan.weight_image`) in ``ceil(W_w / 8)`` bytes, least significant first.
    For boards whose weights sit in SPRAM (``build-board`` writes the image to ``weight_image.npy``)."""
    _check_model(model)
    w = _check_codes(image, model.formats.weight, "weight image").reshape(-1)
    if not len(w):
        raise ValueError("the weight image is empty: this design has no run-time loaded weights")
    nb = -(-model.formats.weight.width // 8)
    return bytes([WEIGHT_HEADER]) + b"".join(int(c).to_bytes(nb, "little", signed=True) for c in w.tolist())


def expected_outputs(model: Model, length: int) -> int:
    """Output frames the device sends for a sequence of ``length`` steps (``length`` or 1)."""
    return 1 if model.outputs == "last" else int(length)


# -- decoders --------------------------------------------------------------------------------------------

class OutputFrame(NamedTuple):
    """One device-to-host frame: ``codes`` (output_size,), ``last``, and with ``final_state`` on
    the last frame of a sequence the final states ``h_n`` (layers x directions, state_size) and
    ``c_n`` (layers x directions, H; LSTMs), else None."""

    codes: np.ndarray
    last: bool
    h_n: np.ndarray | None = None
    c_n: np.ndarray | None = None


class OutputDecoder:
    """Incremental decoder of device-to-host bytes.

    ``feed(data)`` returns the :class:`OutputFrame` objects completed by ``data``. Raises
    :class:`LinkError` on a byte that is not an output header where one is expected.
    """

    def __init__(self, model: Model):
        _check_model(model)
        self.model = model
        self.format = link_format(model)
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buf)

    def feed(self, data) -> list[OutputFrame]:
        self._buf += bytes(data)
        f, model = self.format, self.model
        out = []
        while self._buf:
            h = self._buf[0]
            with_final = bool(h & HEADER_STATE)
            if h & ~(HEADER_LAST | HEADER_STATE) != OUT_HEADER or (
                    with_final and not (f.final_bits and h & HEADER_LAST)):
                raise LinkError(f"expected an output header (0x{OUT_HEADER:02X}/0x{OUT_HEADER | 1:02X}"
                                + (f"/0x{OUT_HEADER | 3:02X}" if f.final_bits else "") + f"), got 0x{h:02X}")
            size = f.out_final_frame_bytes if with_final else f.out_frame_bytes
            if len(self._buf) < size:
                break
            body = bytes(self._buf[1:size])
            del self._buf[:size]
            codes, = _unpack(body[:f.out_bytes], [(model.output_size, f.code_width)])
            h_n = c_n = None
            if with_final:
                n, has_c = _state_counts(model)
                counts = [(n * model.state_size, f.code_width)] + ([(n * model.hidden_size, f.cell_width)] if has_c else [])
                parts = _unpack(body[f.out_bytes:], counts)
                h_n = parts[0].reshape(n, model.state_size)
                c_n = parts[1].reshape(n, model.hidden_size) if has_c else None
            out.append(OutputFrame(codes, bool(h & HEADER_LAST), h_n, c_n))
        return out


def _group(frames) -> tuple[list[np.ndarray], list[dict | None], list]:
    """Frames -> complete sequences (split after each ``last``), their final states, frames left over."""
    seqs, finals, cur = [], [], []
    for fr in frames:
        cur.append(fr.codes)
        if fr.last:
            seqs.append(np.array(cur, dtype=np.int64))
            finals.append(None if fr.h_n is None else {"h_n": fr.h_n, "c_n": fr.c_n})
            cur = []
    return seqs, finals, cur


def decode_outputs(model: Model, data, *, final_states: bool = False):
    """Device-to-host bytes -> per sequence the output codes, shape (U, output_size).

    Sequences end at frames with ``last``. With ``final_states=True`` returns ``(outputs,
    finals)``, ``finals`` holding per sequence ``{"h_n": ..., "c_n": ...}`` (None without
    ``final_state``). Raises :class:`LinkError` for a bad header, an incomplete final frame or
    frames after the last ``last``.
    """
    dec = OutputDecoder(model)
    frames = dec.feed(data)
    if dec.pending:
        raise LinkError(f"the data ends inside a frame ({dec.pending} bytes of it)")
    seqs, finals, rest = _group(frames)
    if rest:
        raise LinkError(f"{len(rest)} output frame(s) after the last one marked 'last'")
    return (seqs, finals) if final_states else seqs


def decode_inputs(model: Model, data, weight_codes: int = 0) -> list[dict]:
    """Host-to-device bytes -> the beats the accelerator receives, grouped into sequences.

    The software twin of :class:`~rnnaccel.hdl.uart.InputDeframer` on an error-free line
    (invalid header bytes are skipped, as the deframer does). Returns per sequence a dict with
    ``x`` (T, X) and, for models with ``initial_state``, the ``h0`` (and ``c0``) in the state
    register at its first beat (what the accelerator uses). A final incomplete frame or
    sequence is an error (:class:`LinkError`). ``weight_codes``: the device takes a weight frame of
    that many codes (it is skipped here).
    """
    _check_model(model)
    f = link_format(model)
    w_frame = 1 + weight_codes * -(-model.formats.weight.width // 8) if weight_codes else 0
    n, has_c = _state_counts(model)
    data = bytes(data)
    state = [np.zeros((n, model.state_size), dtype=np.int64),
             np.zeros((n, model.hidden_size), dtype=np.int64) if has_c else None]
    seqs, xs, first = [], [], None
    i = 0
    while i < len(data):
        h = data[i]
        if h == WEIGHT_HEADER and w_frame:
            if i + w_frame > len(data):
                raise LinkError(f"the data ends inside the weight frame ({len(data) - i} of {w_frame} bytes)")
            i += w_frame
            w_frame = 0                     # one weight frame per reset
            continue
        with_state = bool(h & HEADER_STATE)
        if h & 0xFC != IN_HEADER or (with_state and not model.initial_state):
            i += 1
            continue
        size = f.in_state_frame_bytes if with_state else f.in_frame_bytes
        if i + size > len(data):
            raise LinkError(f"the data ends inside a frame ({len(data) - i} of {size} bytes)")
        x, = _unpack(data[i + 1:i + 1 + f.x_bytes], [(model.input_size, f.code_width)])
        if with_state:
            counts = [(n * model.state_size, f.code_width)] + ([(n * model.hidden_size, f.cell_width)] if has_c else [])
            parts = _unpack(data[i + 1 + f.x_bytes:i + size], counts)
            state = [parts[0].reshape(n, model.state_size),
                     parts[1].reshape(n, model.hidden_size) if has_c else None]
        if not xs:
            first = [None if s is None else s.copy() for s in state]
        xs.append(x)
        i += size
        if h & HEADER_LAST:
            seq = {"x": np.array(xs, dtype=np.int64)}
            if model.initial_state:
                seq["h0"] = first[0]
                if has_c:
                    seq["c0"] = first[1]
            seqs.append(seq)
            xs = []
    if xs:
        raise LinkError(f"{len(xs)} frame(s) after the last one marked 'last'")
    return seqs


# -- flow control ----------------------------------------------------------------------------------------

def plan_transfers(model: Model, sequences, h0=None, c0=None, *, fifo_depth: int | None = None
                   ) -> list[tuple[int, bytes]]:
    """The bytes to send for ``sequences`` and when: a list of ``(outputs_before, chunk)``.

    Send ``chunk`` only once ``outputs_before`` output frames (counted from the start of the run)
    have been received; see the module docstring for the policy. ``h0`` / ``c0`` are lists with
    one entry (or None) per sequence. ``fifo_depth`` is the device's receive buffer (default
    :attr:`~rnnaccel.hdl.uart.LinkFormat.fifo_depth`, what ``build-board`` builds).
    """
    _check_model(model)
    fmt = link_format(model)
    seqs = list(sequences)
    h0s = list(h0) if h0 is not None else [None] * len(seqs)
    c0s = list(c0) if c0 is not None else [None] * len(seqs)
    if len(h0s) != len(seqs) or len(c0s) != len(seqs):
        raise ValueError(f"h0 and c0 need one entry per sequence ({len(seqs)}), got {len(h0s)} and {len(c0s)}")
    depth = fmt.fifo_depth if fifo_depth is None else fifo_depth
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < fmt.in_state_frame_bytes:
        raise ValueError(f"fifo_depth must be at least one input frame ({fmt.in_state_frame_bytes} bytes), "
                         f"got {fifo_depth!r}")
    window = fmt.window_for(depth)
    per_step = model.outputs == "sequence" and not model.bidirectional
    plan: list[tuple[int, bytes]] = []
    beat, outputs = 0, 0
    for x, h, c in zip(seqs, h0s, c0s):
        data = encode_sequence(model, x, h0=h, c0=c)
        if not per_step:
            plan.append((outputs, data))
            outputs += expected_outputs(model, len(x))
            continue
        pos = 0
        for t in range(len(x)):
            size = fmt.in_state_frame_bytes if (t == 0 and model.initial_state) else fmt.in_frame_bytes
            need = max(0, beat - window + 1)
            frame = data[pos:pos + size]
            if plan and plan[-1][0] == need:
                plan[-1] = (need, plan[-1][1] + frame)
            else:
                plan.append((need, frame))
            pos += size
            beat += 1
    return plan


# -- the serial host -------------------------------------------------------------------------------------

class Host:
    """Run sequences on a board over its UART (pyserial).

    Parameters
    ----------
    port : str or serial-like object
        A pyserial port name or URL (``/dev/ttyUSB1``, ``COM3``, ``loop://``), or an open object
        with ``read(n)``, ``write(data)`` (and optionally ``in_waiting``, ``close``), e.g. a
        ``serial.Serial`` or a test double.
    model : Model
        The model the board was built from (``DIR/model.toml``).
    baud : int
        The board's baud rate (``rnnaccel build-board --baud``, default 115200).
    timeout : float
        Seconds without any byte from the device before :class:`LinkTimeout`.
    fifo_depth : int, optional
        The device's receive buffer, if it was built with a non-default one.
    """

    def __init__(self, port, model: Model, baud: int = 115200, *, timeout: float = 2.0,
                 fifo_depth: int | None = None):
        _check_model(model)
        if isinstance(baud, bool) or not isinstance(baud, int) or baud <= 0:
            raise ValueError(f"baud must be a positive integer, got {baud!r}")
        self.model = model
        self.baud = baud
        self.timeout = timeout
        self.fifo_depth = fifo_depth
        self.format = link_format(model)
        #: After :meth:`run`, per sequence ``{"h_n", "c_n"}`` for ``final_state`` models (else None).
        self.final_states: list = []
        if isinstance(port, str):
            import serial
            self._port = serial.serial_for_url(port, baudrate=baud, bytesize=8, parity="N", stopbits=1,
                                               timeout=min(timeout, 0.1))
            self._owned = True
        else:
            if not (hasattr(port, "read") and hasattr(port, "write")):
                raise TypeError(f"port must be a port name or an object with read() and write(), got {port!r}")
            self._port = port
            self._owned = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the port if this object opened it."""
        if self._owned:
            self._port.close()

    def resync(self, duration: float = 0.01):
        """Send a line break: the device drops a partly received frame and waits for a header."""
        self._port.send_break(duration)

    def _read(self, decoder: OutputDecoder, frames: list, wanted: int):
        deadline = time.monotonic() + self.timeout
        while len(frames) < wanted:
            n = max(1, getattr(self._port, "in_waiting", 0) or 0)
            data = self._port.read(n)
            if data:
                frames.extend(decoder.feed(data))
                deadline = time.monotonic() + self.timeout
            elif time.monotonic() > deadline:
                raise LinkTimeout(f"no answer from the device for {self.timeout} s: received {len(frames)} of "
                                  f"{wanted} output frames so far (is the board programmed with this model "
                                  f"and {self.baud} baud?)")

    def load_weights(self, image):
        """Send the weight frame of a board whose weights sit in SPRAM, once after reset and before
        :meth:`run`: ``image`` is ``numpy.load("<board dir>/weight_image.npy")`` (written by
        ``rnnaccel build-board``). The device writes the weights far faster than the UART delivers
        them, so the frame needs no flow control."""
        self._port.write(encode_weights(self.model, image))

    def run(self, sequences, h0=None, c0=None) -> list[np.ndarray]:
        """Send ``sequences`` (each (T, X) ``data`` codes); returns per sequence the output codes.

        Each result has shape (T, output_size), or (1, output_size) with ``outputs = "last"``:
        the same as ``rnnaccel.golden.network.run_codes(model, x).h_codes``. ``h0`` / ``c0``:
        one entry (or None) per sequence, for models with ``initial_state``. With
        ``final_state``, :attr:`final_states` then holds the ``h_n`` / ``c_n`` of each sequence
        (``run_codes(...).final_h`` / ``final_c``).
        """
        seqs = [np.asarray(s) for s in sequences]
        plan = plan_transfers(self.model, seqs, h0, c0, fifo_depth=self.fifo_depth)
        counts = [expected_outputs(self.model, len(s)) for s in seqs]
        total = sum(counts)
        if hasattr(self._port, "reset_input_buffer"):
            self._port.reset_input_buffer()
        decoder = OutputDecoder(self.model)
        frames: list = []
        for need, chunk in plan:
            self._read(decoder, frames, need)
            self._port.write(chunk)
        self._read(decoder, frames, total)
        if len(frames) > total or decoder.pending:
            raise LinkError(f"the device sent more than the {total} expected output frames")
        out, finals, pos = [], [], 0
        for s, n in enumerate(counts):
            part = frames[pos:pos + n]
            pos += n
            lasts = [fr.last for fr in part]
            if lasts != [False] * (n - 1) + [True]:
                raise LinkError(f"sequence {s}: 'last' flags {lasts} of its {n} outputs, expected it on the final one")
            out.append(np.array([fr.codes for fr in part], dtype=np.int64))
            finals.append(None if part[-1].h_n is None else {"h_n": part[-1].h_n, "c_n": part[-1].c_n})
        self.final_states = finals
        return out
