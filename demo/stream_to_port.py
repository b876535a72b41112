"""Stream a continuation to a MIDI output port as it is generated (a synth, a DAW track).

    python demo/stream_to_port.py demo/examples/waltz_in_g.mid --port "IAC Driver Bus 1"

Needs python-rtmidi (pip install 'musegen[live]'); without --port the first port is used.
The same is `musegen play INPUT --port NAME`; this file shows the Python calls behind it.
When `musegen serve` runs, the continuation comes from it (no model loading here) and is
played once it arrives; otherwise the model is loaded here and each note is sent as soon as it
is generated.
"""

from __future__ import annotations

import argparse
import base64
import io

import mido

import musegen
from musegen.generate.live import open_output, output_names, play
from musegen.generate.serve import request
from musegen.options import DEFAULT_MODEL, SERVE_PORT


def stream(
    primer: str,
    port,
    *,
    model: str = DEFAULT_MODEL,
    bars: int = 8,
    seed: int | None = None,
    engine_port: int | None = SERVE_PORT,
):
    """Generate and send; returns the number of messages sent."""
    if engine_port is not None:
        with open(primer, "rb") as f:
            body = {"midi": base64.b64encode(f.read()).decode(), "model": model, "bars": bars}
        answer = request("/continue", body | {"seed": seed, "key": "auto"}, port=engine_port)
        if answer is not None:  # a running engine did the work
            new = mido.MidiFile(file=io.BytesIO(base64.b64decode(answer["midi"])))
            return play((m for m in new if not m.is_meta), port)  # .time: seconds between
    m = musegen.load(model)
    return play(m.stream(primer, bars=bars, seed=seed, key="auto"), port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("primer")
    parser.add_argument("--port", default=None)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--bars", type=int, default=8)
    args = parser.parse_args()
    name = args.port or (output_names() or [None])[0]
    with open_output(name) as port:
        print(f"sent {stream(args.primer, port, model=args.model, bars=args.bars)} messages")


if __name__ == "__main__":
    main()
