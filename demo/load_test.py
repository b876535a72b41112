"""Load test for the web demo: many gradio_client users calling /continue at once.

    python demo/load_test.py [--url http://127.0.0.1:7860/] [--users 16] [--calls 2]

Without --url it starts the demo on a free loopback port first. Every user uploads an example
melody and asks for a continuation ``--calls`` times; the script reports errors and latency
(median, 95th percentile, max), then checks that an upload over the size limit is refused
with a message. Exits 1 on any error.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent / "examples"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def user(url: str, midi: Path, calls: int, bars: int, seed: int, out: list, errors: list) -> None:
    from gradio_client import Client, handle_file

    try:
        client = Client(url, verbose=False)
    except Exception as e:  # a user who cannot connect is an error too
        errors.append(f"connect: {e}")
        return
    for i in range(calls):
        t0 = time.perf_counter()
        try:
            result = client.predict(
                handle_file(str(midi)), bars=bars, seed=seed * 100 + i, api_name="/continue"
            )
            if result[0] is None or "bars with" not in result[-1]:
                errors.append(f"user {seed}: incomplete result {result[-1]!r}")
                continue
        except Exception as e:
            errors.append(f"user {seed}: {type(e).__name__}: {e}")
            continue
        out.append(time.perf_counter() - t0)


def oversize_upload_is_refused(url: str, limit_bytes: int) -> str:
    """Upload a file over the limit; return the message the server gave."""
    from gradio_client import Client, handle_file

    with tempfile.NamedTemporaryFile(suffix=".mid") as f:
        f.write(b"MThd" + b"\0" * (limit_bytes + 1024))
        f.flush()
        try:
            Client(url, verbose=False).predict(handle_file(f.name), api_name="/continue")
        except Exception as e:
            return str(e)
    raise AssertionError("an upload over the limit was accepted")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=None, help="a running demo (default: start one)")
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--calls", type=int, default=2, help="continuations per user")
    parser.add_argument("--bars", type=int, default=8)
    args = parser.parse_args(argv)

    from musegen.app import CONCURRENCY, QUEUE_SIZE, launch
    from musegen.midi import DEFAULT_LIMITS

    app = None
    url = args.url
    if url is None:
        port = _free_port()
        app = launch("127.0.0.1", port, block=False)
        url = f"http://127.0.0.1:{port}/"
    midis = sorted(EXAMPLES.glob("*.mid"))
    if not midis:
        parser.error(f"no example melodies in {EXAMPLES}")
    latencies: list[float] = []
    errors: list[str] = []
    try:
        threads = [
            threading.Thread(
                target=user,
                args=(url, midis[i % len(midis)], args.calls, args.bars, i, latencies, errors),
            )
            for i in range(args.users)
        ]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        message = oversize_upload_is_refused(url, DEFAULT_LIMITS.max_file_bytes)
    finally:
        if app is not None:
            app.close()

    ms = sorted(1000 * s for s in latencies)
    p95 = ms[min(len(ms) - 1, int(0.95 * len(ms)))] if ms else float("nan")
    print(
        f"{args.users} users x {args.calls} calls of {args.bars} bars: {len(ms)} answered, "
        f"{len(errors)} errors, in {wall:.1f} s (server: {CONCURRENCY} at once, queue of "
        f"{QUEUE_SIZE})"
    )
    if ms:
        print(f"latency ms: median {statistics.median(ms):.0f}, p95 {p95:.0f}, max {ms[-1]:.0f}")
    print(f"oversize upload refused: {message}")
    if "maximum file size" not in message:
        errors.append(f"the oversize upload failed for another reason: {message}")
    for e in errors[:10]:
        print("error:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
