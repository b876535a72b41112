"""Opening a graph fast: the graphs ONNX Runtime optimized, kept on disk.

Opening a shipped int8 graph took ONNX Runtime 85 ms (a step) to 130 ms (a prefill) on the
2-core EPYC, most of it computing the int8 weights from the float32 ones
(`musegen.runtime.int8`) and optimizing the graph; the graph it optimized opens in 11-22 ms.
So the first time a graph is opened, ONNX Runtime writes the graph it optimized into
``cache_dir("graphs")`` (`musegen.options.cache_dir`: ``$MUSEGEN_CACHE/graphs``, default
``~/.cache/musegen/graphs``), and later sessions, in any process, open that one. A kept graph
holds what ONNX Runtime computed from the weights (the int8 weights: 3-4 MB per shipped int8
graph); the float32 weights it reads as they are stay references into the checkpoint's
``model.safetensors``, against which it is opened.

A kept graph's name is a hash of everything it was made from: the graph file, the bytes of
the weights, ONNX Runtime's version, the optimization level, and this CPU's model and flags (an
optimized graph may use kernels chosen for the CPU). A change to any of them opens the graph
afresh and keeps the new result; the `KEEP` graphs used last are kept, older ones deleted.
``MUSEGEN_GRAPH_CACHE=0`` turns the cache off; a cache folder that cannot be written is passed
by silently, and a kept graph that does not open is replaced.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import tempfile
import threading
from functools import cache
from pathlib import Path
from typing import Any

from musegen.options import cache_dir

CACHE_SWITCH_ENV = "MUSEGEN_GRAPH_CACHE"  # "0": open every graph from its file
KEEP = 32  # kept graphs at most (3-4 MB each); the least lately used go first
EXTERNAL_FOLDER = "session.model_external_initializers_file_folder_path"
PROVIDERS = ["CPUExecutionProvider"]

_weights_lock = threading.Lock()
_weights_hashes: dict[tuple, str] = {}  # (path, size, mtime) -> sha256 of the file


def enabled() -> bool:
    """Whether sessions are opened through the cache (``MUSEGEN_GRAPH_CACHE`` not "0")."""
    return os.environ.get(CACHE_SWITCH_ENV, "").strip() != "0"


def open_session(graph: Path, weights: Path, options: Any) -> Any:
    """An ONNX Runtime session of the graph file ``graph`` (its external data in ``weights``'
    folder) with ``options``, from the kept optimized graph when there is one, else from the
    file, keeping what ONNX Runtime made of it."""
    import onnxruntime as ort

    if not enabled():
        return ort.InferenceSession(str(graph), options, providers=PROVIDERS)
    kept = _folder() / f"{_key(graph, weights, options)}.onnx"
    if kept.is_file():
        options.add_session_config_entry(EXTERNAL_FOLDER, str(weights.parent))
        try:
            session = ort.InferenceSession(kept.read_bytes(), options, providers=PROVIDERS)
        except Exception:  # a kept graph cut short or unreadable: made again below
            with contextlib.suppress(OSError):
                kept.unlink(missing_ok=True)
        else:
            with contextlib.suppress(OSError):
                os.utime(kept)  # lately used
            return session
    return _open_and_keep(graph, kept, options)


def _open_and_keep(graph: Path, kept: Path, options: Any) -> Any:
    """The session of ``graph``, its optimized graph written to ``kept`` on the way (when
    the folder can be written)."""
    import onnxruntime as ort

    try:
        kept.parent.mkdir(parents=True, exist_ok=True)
        fd, scratch = tempfile.mkstemp(dir=kept.parent, prefix=".", suffix=".onnx")
        os.close(fd)
    except OSError:  # a read-only home, a full disk: open without keeping
        return ort.InferenceSession(str(graph), options, providers=PROVIDERS)
    try:
        options.optimized_model_filepath = scratch
        try:
            session = ort.InferenceSession(str(graph), options, providers=PROVIDERS)
        except Exception:  # writing what it optimized failed (a full disk), or the graph
            options.optimized_model_filepath = ""  # is broken: then this raises as usual
            return ort.InferenceSession(str(graph), options, providers=PROVIDERS)
        with contextlib.suppress(OSError):
            os.replace(scratch, kept)  # whole, or not at all: another process may be reading
            _prune(kept.parent)
        return session
    finally:
        with contextlib.suppress(OSError):
            Path(scratch).unlink(missing_ok=True)


def _prune(folder: Path) -> None:
    """Delete all but the `KEEP` kept graphs used last (each session of one touches it)."""
    graphs = []
    for path in folder.glob("*.onnx"):
        with contextlib.suppress(OSError):  # another process may be pruning too
            graphs.append((path.stat().st_mtime_ns, path))
    for _, path in sorted(graphs, reverse=True)[KEEP:]:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _folder() -> Path:
    return cache_dir("graphs")


def _key(graph: Path, weights: Path, options: Any) -> str:
    """The hash naming what ``graph`` optimized with ``options`` becomes (see the module)."""
    import onnxruntime as ort

    parts = [
        hashlib.sha256(graph.read_bytes()).hexdigest(),
        _weights_hash(weights),
        ort.__version__,
        str(options.graph_optimization_level),
        _cpu(),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _weights_hash(path: Path) -> str:
    """sha256 of a weights file (20 ms for 13 MB here), once per process per version of the
    file (its size and modification time)."""
    stat = path.stat()
    version = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _weights_lock:
        known = _weights_hashes.get(version)
    if known is None:
        known = hashlib.sha256(path.read_bytes()).hexdigest()
        with _weights_lock:
            _weights_hashes[version] = known
    return known


@cache
def _cpu() -> str:
    """This CPU's architecture, model and feature flags (Linux), as one string."""
    lines = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "flags")) and line not in lines:
                    lines.append(line)
                if len(lines) >= 2:
                    break
    except OSError:  # not Linux
        pass
    return platform.machine() + "".join(lines)
