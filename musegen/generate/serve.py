"""`musegen serve`: models kept loaded, answering DAW scripts over HTTP on 127.0.0.1.

A script inside a DAW should not pay for loading a model at every action. The engine loads
each model once, on its first request, and keeps it; requests are JSON over HTTP on the
loopback interface only (nothing outside the machine can reach it):

    POST /continue  {"notes": [[start, end, pitch, velocity], ...], "metre": [4, 4],
                     "bars": 4, "model": "mamba", "seed": 1, "temperature": 1.0, "key": "auto"}
                 -> {"notes": [[start, end, pitch, velocity], ...], "seed": 1, "ms": 41.0}
    POST /infill    {"notes": ..., "metre": ..., "first_bar": 3, "last_bar": 4,
                     "candidates": 4, ...}
                 -> {"notes": [...the notes of bars 3-4...], "seed": ..., "ms": ...}
    POST /continue  {"midi": "<a MIDI file, base64>", "bars": 4, ...}
                 -> {"midi": "<the new bars alone, as a MIDI file, base64>", "seed": ..., ...}
    GET  /health -> {"musegen": "0.1.0", "models": ["mamba"]}

Times are quarter notes from the clip's start (`musegen.generate.notes`). A request the caller
can fix gets status 400 and ``{"error": message}``; a failure of the engine 500. `request` is
the client: it returns None when no engine is listening, so that a script can fall back to
loading a model itself.
"""

from __future__ import annotations

import json
import math
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from musegen.errors import ConfigError, MuseGenError
from musegen.generate.notes import continue_notes, infill_notes
from musegen.io.midi_out import pretty_midi_bytes
from musegen.options import DEFAULT_MODEL, INFILL_CANDIDATES, SERVE_PORT, draw_seed

HOST = "127.0.0.1"
DEFAULT_PORT = SERVE_PORT
MAX_BODY = 4 << 20  # bytes of JSON a request may carry
SAMPLING = ("temperature", "top_k", "top_p", "min_p", "key")


class Engine:
    """The models a server keeps loaded, by name (loaded on first use)."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def model(self, name: str) -> Any:
        if name in self._models:
            return self._models[name]
        with self._lock:  # one load per model, even when two requests ask at once
            if name not in self._models:
                from musegen.generate.muse import load

                self._models[name] = load(name, threads=self.threads)
            return self._models[name]

    @property
    def loaded(self) -> list[str]:
        return list(self._models)

    def handle(self, path: str, body: dict) -> dict:
        """Answer one request: ``path`` "/continue" or "/infill", ``body`` its JSON."""
        if not isinstance(body, dict):
            raise ConfigError("the request body must be a JSON object")
        model = self.model(str(body.get("model") or DEFAULT_MODEL))
        seed = draw_seed(body.get("seed"))
        options = {k: body[k] for k in SAMPLING if body.get(k) is not None}
        started = time.perf_counter()
        if path == "/continue" and body.get("midi") is not None:
            midi = _continue_file(
                model, body["midi"], _whole(body.get("bars", 4), "bars"), seed=seed, **options
            )
            ms = (time.perf_counter() - started) * 1e3
            return {"midi": midi, "seed": seed, "ms": round(ms, 1)}
        if path == "/continue":
            notes = continue_notes(
                model,
                body.get("notes"),
                body.get("metre", (4, 4)),
                bars=_whole(body.get("bars", 4), "bars"),
                seed=seed,
                **options,
            )
        elif path == "/infill":
            notes = infill_notes(
                model,
                body.get("notes"),
                body.get("metre", (4, 4)),
                _whole(body.get("first_bar"), "first_bar"),
                _whole(body.get("last_bar"), "last_bar"),
                seed=seed,
                candidates=_whole(body.get("candidates", INFILL_CANDIDATES), "candidates"),
                **options,
            )
        else:
            raise ConfigError(f"no such request {path!r}: use /continue, /infill or /health")
        ms = (time.perf_counter() - started) * 1e3
        return {"notes": [list(n) for n in notes], "seed": seed, "ms": round(ms, 1)}


def _continue_file(model: Any, midi_b64: Any, bars: int, **options: Any) -> str:
    """The new bars of a continuation of a MIDI file (base64 in, base64 out)."""
    import base64
    import binascii

    try:
        data = base64.b64decode(str(midi_b64), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError("midi must be a MIDI file in base64") from None
    out = model.continue_midi(data, bars=bars, continuation_only=True, **options)
    return base64.b64encode(pretty_midi_bytes(out)).decode()


def _whole(value: Any, name: str) -> int:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value != int(value):
        raise ConfigError(f"{name} must be a whole number (got {value!r})")
    return int(value)


class _Handler(BaseHTTPRequestHandler):
    engine: Engine  # set on the class a server makes

    def log_message(self, *args: Any) -> None:  # no line per request on stderr
        pass

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        refused = self._refused()
        if refused is not None:
            self._reply(403, {"error": refused})
            return
        if self.path != "/health":
            self._reply(404, {"error": "GET /health, or POST /continue or /infill"})
            return
        from musegen import __version__

        self._reply(200, {"musegen": __version__, "models": self.engine.loaded})

    def _refused(self) -> str | None:
        """Why a request is refused: only programs on this machine may ask, not web pages.
        A browser sends an Origin, and a page reached by DNS rebinding a foreign Host."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if host not in ("127.0.0.1", "localhost", "::1"):
            return "requests must be addressed to 127.0.0.1"
        if self.headers.get("Origin") is not None:
            return "requests from web pages are refused"
        return None

    def do_POST(self) -> None:  # noqa: N802
        refused = self._refused()
        if refused is not None:
            self._reply(403, {"error": refused})
            return
        try:
            if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                raise ConfigError("send the request as JSON (Content-Type: application/json)")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY:
                raise ConfigError(f"Content-Length must be 0-{MAX_BODY} bytes")
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError as e:
                raise ConfigError(f"the request body is not JSON ({e})") from None
            self._reply(200, self.engine.handle(self.path, body))
        except MuseGenError as e:
            self._reply(400, {"error": str(e)})
        except Exception as e:  # a bug: say so, keep serving
            self._reply(500, {"error": f"the engine failed ({type(e).__name__}: {e})"})


def make_server(port: int = DEFAULT_PORT, threads: int | None = None) -> ThreadingHTTPServer:
    """A server on 127.0.0.1:``port`` over a new `Engine` (call ``serve_forever``)."""
    handler = type("Handler", (_Handler,), {"engine": Engine(threads)})
    try:
        server = ThreadingHTTPServer((HOST, port), handler)
    except OSError as e:
        raise ConfigError(
            f"cannot serve on {HOST}:{port} ({e}); is it in use? pass --port N"
        ) from e
    server.daemon_threads = True
    return server


def request(
    path: str, payload: dict, port: int = DEFAULT_PORT, timeout: float = 60.0
) -> dict | None:
    """Send one request to a running engine; None when none is listening on ``port``.

    Raises `MuseGenError` with the engine's message when it refuses the request."""
    data = json.dumps(payload).encode()
    req = urllib.request.Request(
        f"http://{HOST}:{port}{path}", data, {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        try:
            message = json.loads(e.read() or b"{}").get("error", str(e))
        except ValueError:  # not the engine: another program on the port
            message = f"port {port} answered, but not as musegen serve ({e})"
        raise MuseGenError(message) from None
    except TimeoutError:
        raise MuseGenError(f"musegen serve on port {port} did not answer in {timeout} s") from None
    except (urllib.error.URLError, ConnectionError):
        return None
    except ValueError as e:  # a reply that is not JSON
        raise MuseGenError(f"port {port} answered, but not as musegen serve ({e})") from None
