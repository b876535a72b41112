"""ONNX Runtime: a checkpoint's exported graphs, run without torch.

``prefill.onnx`` and ``step.onnx`` (written by `musegen.runtime.export`) read their weights from
the checkpoint's ``model.safetensors`` as ONNX external data, so opening a graph needs nothing
but the checkpoint directory. The state is a dict of NumPy arrays named as the graphs' inputs.

Two precisions: "float32" runs those graphs, the reference; "int8" runs ``prefill.int8.onnx``
and ``step.int8.onnx``, the same graphs with their weight products in 8 bits, the int8
weights made from the float32 ones when the graph is opened (`musegen.runtime.int8`).

The last few prefills are kept (``PREFILL_CACHE``): a musician who asks again for the same
clip (another continuation, other settings) does not wait for its primer to be read again.
``forget()`` empties the cache; ``prefill_cache=0`` turns it off.

Thread pools: ONNX Runtime's workers spin while they wait for work by default, which on a busy
2-core machine multiplies a step's latency; spinning is switched off. A batch-1 step runs on
``threads`` intra-op threads (1 unless told otherwise, `musegen.options.generation_threads`),
the prefill on ``prefill_threads`` (`musegen.options.prefill_threads`: 2 by default).
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from musegen.errors import CheckpointError
from musegen.runtime.graph_cache import open_session

GRAPH_VERSION = 2  # 2: the Transformer's keys transposed in their ring (ring_axis)
PREFILL, STEP = "prefill.onnx", "step.onnx"
WEIGHTS = "model.safetensors"
PRECISIONS: tuple[str, ...] = ("float32", "int8")


def graph_files(precision: str = "float32") -> tuple[str, str]:
    """The prefill and step graphs' file names for a precision."""
    if precision == "float32":
        return PREFILL, STEP
    return tuple(name.replace(".onnx", f".{precision}.onnx") for name in (PREFILL, STEP))


PREFILL_CACHE = 4  # prefills kept per runtime (a few MB each at most)
# A Transformer ring that fills grows by this many slots at a time (steps read every slot)
RING_GROWTH = 128
BOUND_RINGS = 4  # bindings to rings kept per thread (`OnnxRuntime._rings_bound_to`)

State = dict[str, np.ndarray]


def safetensors_header(path: Path) -> tuple[dict, int, str]:
    """(tensor entries, where the data starts, sha256 of the header) of a safetensors file."""
    with open(path, "rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        raw = f.read(size)
    header = json.loads(raw)
    header.pop("__metadata__", None)
    return header, 8 + size, hashlib.sha256(raw).hexdigest()


def model_config_hash(directory: Path) -> str:
    """sha256 of the model section of a checkpoint's config.json (sizes, window, ...)."""
    config = json.loads((directory / "config.json").read_text())
    return hashlib.sha256(json.dumps(config["model"], sort_keys=True).encode()).hexdigest()


def session_options(threads: int):  # -> onnxruntime.SessionOptions
    """Options for a generation session: sequential, ``threads`` intra-op threads (0: ONNX
    Runtime's choice), no spin-waiting."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3  # errors only: no notes about graph rewrites on stderr
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    if threads:
        so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return so


class OnnxRuntime:
    """`musegen.runtime.base.Runtime` over a checkpoint's graphs, on the CPU."""

    name = "onnx"

    def __init__(
        self,
        directory: str | Path,
        threads: int = 1,
        prefill_threads: int | None = None,
        precision: str = "float32",
        prefill_cache: int = PREFILL_CACHE,
    ) -> None:

        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS} (got {precision!r})")
        directory = Path(directory)
        self.precision = precision
        _, _, header_hash = safetensors_header(directory / WEIGHTS)
        prefill_file, step_file = graph_files(precision)
        options = {
            prefill_file: session_options(prefill_threads or threads),
            step_file: session_options(threads),
        }

        def open_graph(name: str):  # -> onnxruntime.InferenceSession
            try:
                return open_session(directory / name, directory / WEIGHTS, options[name])
            except Exception as e:  # onnxruntime raises its own exception types
                raise CheckpointError(
                    f"{directory / name} could not be opened ({e}); run "
                    f"`musegen export {directory}` again"
                ) from e

        with ThreadPoolExecutor(2) as pool:  # ONNX Runtime builds sessions without the GIL
            graphs = (prefill_file, step_file)
            sessions = dict(zip(graphs, pool.map(open_graph, graphs), strict=True))
        for name, session in sessions.items():
            meta = {
                k.removeprefix("musegen."): json.loads(v)
                for k, v in session.get_modelmeta().custom_metadata_map.items()
                if k.startswith("musegen.")
            }
            if meta.get("graph_version") != GRAPH_VERSION:
                raise CheckpointError(
                    f"{directory / name} was written by another musegen version; run "
                    f"`musegen export {directory}` again"
                )
            if meta.get("precision", "float32") != precision:
                raise CheckpointError(
                    f"{directory / name} does not hold {precision} graphs; run "
                    f"`musegen export {directory}` again"
                )
            stale = meta.get("model_config_sha256") != model_config_hash(directory)
            if meta.get("weights_header_sha256") != header_hash or stale:
                raise CheckpointError(
                    f"{directory / name} was exported for another model than the one in "
                    f"{directory}; run `musegen export {directory}` again"
                )
        self.prefill_session, self.step_session = sessions[prefill_file], sessions[step_file]
        self.spec: list[tuple[str, int | None]] = [tuple(s) for s in meta["state"]]
        self.names = [n for n, _ in self.spec]
        self.window: int | None = meta["window"]
        # the caches the step returns one row of (see below), each with its slot axis
        self.ring_axis: dict[str, int] = meta["ring_axis"]
        self.ring: list[str] = list(self.ring_axis)
        # whether the step graph takes rings of fewer slots than the window (graphs exported
        # before it could take only full rings)
        first = (
            {i.name: i.shape for i in self.step_session.get_inputs()}.get(self.ring[0])
            if self.ring
            else None
        )
        self.growing = first is not None and not isinstance(
            first[self.ring_axis[self.ring[0]]], int
        )
        shapes = meta["prefill_state"]  # None: prefill starts empty (and takes <= window)
        self.empty = None if shapes is None else [np.zeros(s, np.float32) for s in shapes]
        self.chunk: int = meta.get("prefill_chunk") or 512  # tokens per prefill call
        self._local = threading.local()  # each thread's step buffers (see step)
        self._lock = threading.Lock()  # the prefill cache is shared by threads
        self._reading: dict[tuple[int, ...], threading.Event] = {}  # ids being read now
        self.cache_size = prefill_cache
        self._cache: OrderedDict[tuple[int, ...], tuple[np.ndarray, State]] = OrderedDict()

    def prefill(self, ids: list[int]) -> tuple[np.ndarray, State]:
        """`Runtime.prefill`, from the cache when these ids were read lately (what comes
        back is a copy either way: steps never touch what the cache holds). While another
        thread reads the same ids (the demo reading an upload ahead), this waits for that
        reading instead of doing it twice."""
        if not self.cache_size:
            return self.read(ids)
        key = tuple(int(i) for i in ids)
        while True:
            with self._lock:
                kept = self._cache.get(key)
                if kept is not None:
                    self._cache.move_to_end(key)
                    break
                other = self._reading.get(key)
                if other is None:
                    mine = self._reading[key] = threading.Event()
                    break
            other.wait()  # then look again: kept, or read here if that reading failed
        if kept is None:
            try:
                kept = self.read(ids)
                with self._lock:
                    self._cache[key] = kept
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
            finally:
                with self._lock:
                    del self._reading[key]
                mine.set()
        logits, state = kept
        return logits.copy(), {name: a.copy() for name, a in state.items()}

    @property
    def keeps_prefills(self) -> bool:
        """Whether prefills are kept (``prefill_cache`` > 0)."""
        return self.cache_size > 0

    def forget(self) -> None:
        """Empty the prefill cache."""
        with self._lock:
            self._cache.clear()

    def read(self, ids: list[int]) -> tuple[np.ndarray, State]:
        """The prefill graph over ``ids``, no cache: logits (T, V) and the state after them."""
        tokens = np.asarray([ids], dtype=np.int64)  # (1, T)
        session = self.prefill_session
        if self.empty is None:  # at most a window
            logits, *out = session.run(None, {"tokens": tokens})
            state = dict(zip(self.names, out, strict=True))
            slots = self.ring_slots(len(ids))
            for name in self.ring:  # keys or values of T positions into slots 0..T-1
                state[name] = _widened(state[name], self.ring_axis[name], slots)
            return logits[0], state
        state, pieces = dict(zip(self.names, self.empty, strict=True)), []
        for i in range(0, max(len(ids), 1), self.chunk):  # long primers in pieces
            logits, *out = session.run(None, {"tokens": tokens[:, i : i + self.chunk]} | state)
            state = dict(zip(self.names, out, strict=True))
            pieces.append(logits[0])
        return np.concatenate(pieces) if len(pieces) > 1 else pieces[0], state

    def ring_slots(self, pos: int) -> int:
        """The slots a ring needs for its next step at position ``pos``: the window, or while
        it fills (where the graph allows) the next multiple of `RING_GROWTH` above ``pos``:
        a short clip's steps then read only what it has filled, not the whole window."""
        if not self.growing:
            return self.window
        return min(self.window, RING_GROWTH * (pos // RING_GROWTH + 1))

    def _make_room(self, state: State, pos: int) -> None:
        """Grow the rings of ``state`` (in place) when slot ``pos`` is past their end."""
        first = self.ring[0]
        slots = state[first].shape[self.ring_axis[first]]
        if pos < slots or slots >= self.window:
            return
        for name in self.ring:
            state[name] = _widened(state[name], self.ring_axis[name], self.ring_slots(pos))

    def repeat(self, state: State, n: int) -> State:
        return {
            name: state[name] if dim is None else np.repeat(state[name], n, axis=dim)
            for name, dim in self.spec
        }

    def step(self, tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """`Runtime.step`. The LSTM's and Mamba's steps return their whole state: they run
        bound to two state buffers in turn (`_BoundSteps`). The Transformer's step returns one
        row per cache: it runs bound to the state's rings (`_BoundRings`). `step_unbound` is
        the plain call both are tested against."""
        rows = len(tokens)
        if self.ring:
            self._make_room(state, int(state["pos"][0]))
            if not _bindable(state, self.ring):
                return self.step_unbound(tokens, state)
            logits, new = self._rings_bound_to(rows, state).step(tokens, state["pos"])
            return logits, self._written(state, new)
        bound = getattr(self._local, "bound", None)
        if bound is None or not bound.takes(rows, state):
            bound = self._local.bound = _BoundSteps(self.step_session, self.names, rows, state)
        return bound.step(tokens, state)

    def _rings_bound_to(self, rows: int, state: State) -> _BoundRings:
        """This thread's binding to ``state``'s rings: one of the last `BOUND_RINGS` made
        (generation steps one state; the bench, several in turn), or a new one."""
        kept = getattr(self._local, "rings", None)
        if kept is None:
            kept = self._local.rings = []
        for bound in kept:
            if bound.takes(rows, state):
                return bound
        bound = _BoundRings(self.step_session, self.ring_axis, rows, state)
        kept[:] = [b for b in kept if b.alive()][-(BOUND_RINGS - 1) :] + [bound]
        return bound

    def step_unbound(self, tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        """One step by a plain ``run``: ONNX Runtime allocates the outputs."""
        if self.ring:
            self._make_room(state, int(state["pos"][0]))
        feed = {"token": np.asarray(tokens, dtype=np.int64)} | state
        logits, *new = self.step_session.run(None, feed)
        if not self.ring:
            return logits, dict(zip(self.names, new, strict=True))
        return logits, self._written(state, new)

    def _written(self, state: State, rows: list[np.ndarray]) -> State:
        """``state`` with each cache's new row (B, H, Dh), in `ring` order, in its slot, and
        the position advanced."""
        slot = int(state["pos"][0]) % self.window
        for name, row in zip(self.ring, rows, strict=True):
            _slots(state[name], self.ring_axis[name], slot)[...] = row
        state["pos"] = state["pos"] + 1
        return state


def _widened(cache: np.ndarray, axis: int, slots: int) -> np.ndarray:
    """A new float32 ring of ``slots`` slots along ``axis`` holding ``cache`` in its first
    slots, zeros after."""
    shape = list(cache.shape)
    shape[axis] = slots
    ring = np.zeros(shape, np.float32)
    np.copyto(_slots(ring, axis, slice(0, cache.shape[axis])), cache)
    return ring


def _slots(cache: np.ndarray, axis: int, which: int | slice) -> np.ndarray:
    """A view of ``cache`` at slot(s) ``which`` of its slot ``axis``."""
    index: list[int | slice] = [slice(None)] * cache.ndim
    index[axis] = which
    return cache[tuple(index)]


class _BoundSteps:
    """Two state buffers of one shape that the step graph reads and writes in turn.

    A step reads one buffer and writes the new state into the other, through ONNX Runtime's
    I/O binding: no outputs to allocate and no feed to build at every token (a Mamba step
    returns 720 KB of state; on the 2-core EPYC binding took a Mamba-2 int8 step from
    1.47-1.50 ms to 1.35-1.36, the LSTM's from 0.49-0.52 to 0.46-0.47). The state
    a step returns is the buffer the following step overwrites, as `Runtime.step` allows;
    the logits are returned as a copy, since callers keep them."""

    def __init__(self, session, names: list[str], rows: int, state: State) -> None:  # noqa: ANN001
        self.session, self.names = session, names
        self.buffers = tuple(
            {n: np.empty(state[n].shape, np.float32) for n in names} for _ in (0, 1)
        )
        self.token = np.zeros(rows, np.int64)
        self.logits = np.zeros((rows, session.get_outputs()[0].shape[-1]), np.float32)
        outputs = [o.name for o in session.get_outputs()][1:]
        self.bindings = []
        for i in (0, 1):
            read, write = self.buffers[i], self.buffers[1 - i]
            binding = session.io_binding()
            _bind(binding.bind_input, "token", self.token)
            for name in names:
                _bind(binding.bind_input, name, read[name])
            _bind(binding.bind_output, "logits", self.logits)
            for name, output in zip(names, outputs, strict=True):
                _bind(binding.bind_output, output, write[name])
            self.bindings.append(binding)

    def takes(self, rows: int, state: State) -> bool:
        """Whether a step of ``rows`` tokens from ``state`` fits these buffers."""
        if rows != len(self.token):
            return False
        return any(state is b for b in self.buffers) or all(
            state[n].shape == self.buffers[0][n].shape for n in self.names
        )

    def step(self, tokens: np.ndarray, state: State) -> tuple[np.ndarray, State]:
        i = 1 if state is self.buffers[1] else 0
        if state is not self.buffers[i]:  # a new state (a prefill, a repeat): copy it in
            for name in self.names:
                np.copyto(self.buffers[0][name], state[name])
        self.token[:] = tokens
        self.session.run_with_iobinding(self.bindings[i])
        return self.logits.copy(), self.buffers[1 - i]


class _BoundRings:
    """The Transformer's step graph bound to one state's rings, which it reads in place.

    The token and position are copied into buffers of its own, the logits and the caches'
    new rows come out into others: no feed to build and no outputs to allocate at every
    token (on the 2-core EPYC, 0.05-0.2 ms of a 1.3-1.5 ms step). A new state, or rings that
    grew (`OnnxRuntime._make_room`), get a new binding. It holds the rings weakly: a binding
    does not keep a finished generation's caches alive, and one whose rings are gone is
    never run."""

    def __init__(self, session, ring_axis: dict[str, int], rows: int, state: State) -> None:  # noqa: ANN001
        self.session = session
        self.rings = {name: weakref.ref(state[name]) for name in ring_axis}
        self.token = np.zeros(rows, np.int64)
        self.pos = np.zeros_like(state["pos"])
        self.logits = np.zeros((rows, session.get_outputs()[0].shape[-1]), np.float32)
        self.rows = []  # each ring's new row: its shape without the slot axis
        for name, axis in ring_axis.items():
            shape = list(state[name].shape)
            del shape[axis]
            self.rows.append(np.zeros(shape, np.float32))
        self.binding = session.io_binding()
        _bind(self.binding.bind_input, "token", self.token)
        _bind(self.binding.bind_input, "pos", self.pos)
        for name in ring_axis:
            _bind(self.binding.bind_input, name, state[name])
        outputs = [o.name for o in session.get_outputs()]
        _bind(self.binding.bind_output, outputs[0], self.logits)
        for name, row in zip(outputs[1:], self.rows, strict=True):
            _bind(self.binding.bind_output, name, row)

    def alive(self) -> bool:
        """Whether the rings bound are still there."""
        return all(ring() is not None for ring in self.rings.values())

    def takes(self, rows: int, state: State) -> bool:
        """Whether ``state``'s rings are the ones bound, for a step of ``rows`` tokens."""
        return rows == len(self.token) and all(state[n] is r() for n, r in self.rings.items())

    def step(self, tokens: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        """Run the step for ``tokens`` (rows,) at ``pos`` (1,) over the bound rings (`takes`
        must hold): a copy of the logits (rows, V), and each ring's new row (rows, H, Dh),
        in buffers the next step overwrites."""
        self.token[:] = tokens
        self.pos[:] = pos
        self.session.run_with_iobinding(self.binding)
        return self.logits.copy(), self.rows


def _bindable(state: State, names: list[str]) -> bool:
    """Whether the arrays ``names`` of ``state`` can be bound as they are: float32, one
    C-ordered block (a graph bound to a strided view would read the wrong numbers)."""
    return all(state[n].dtype == np.float32 and state[n].flags.c_contiguous for n in names)


def _bind(bind, name: str, array: np.ndarray) -> None:  # noqa: ANN001 - an IOBinding method
    """Bind ``name`` to ``array``'s memory (no copy): the graph reads or writes it in place."""
    bind(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
