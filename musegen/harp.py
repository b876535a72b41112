"""HARP: musegen as a MIDI processor inside any DAW, on plain Gradio.

HARP (https://github.com/TEAMuP-dev/HARP) is a plugin and app that sends a DAW's MIDI (or audio)
to a Gradio app and puts the result back on a track. The web demo (`musegen.app`) speaks its
protocol as HARP 3.0.1 does with apps built on pyharp 0.3.0, without pyharp (not on PyPI, and
pinned to an older Gradio). Three named endpoints, with the queue on:

- ``controls`` (no inputs): the card and the controls, as JSON (`card`);
- ``process``: a MIDI file and the controls' values, in the card's order -> the new MIDI file
  and a label list (a ``pyharp.LabelList`` that marks the new bars on HARP's track);
- ``cancel``: stops the ``process`` calls running now (they end with a "cancelled" error;
  HARP has already dropped their result). HARP's requests carry no session, so a cancel
  stops every HARP request in flight: on a DAW's own machine, that is the one it started.

What HARP sends: it uploads the track (``POST /gradio_api/upload``, field ``files``), calls
``POST /gradio_api/call/process`` with ``{"data": [{"path": ..., "meta": {"_type":
"gradio.FileData"}}, "mamba", "continue", 8.0, ...]}`` and reads the event stream of
``GET /gradio_api/call/process/{event_id}``; every output must be an object with a ``meta``.
HARP reads dropdown choices as ``[label, value]`` pairs, toggles as JSON booleans and ignores
number boxes, so the card uses dropdowns and sliders only.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from threading import Event, Lock
from typing import Any

from musegen.errors import ConfigError
from musegen.io.midi_out import write_pretty_midi
from musegen.options import MAX_GAP_BARS, Sampling, draw_seed

PROTOCOL = "HARP 3.0.1 with pyharp 0.3.0 apps (controls / process / cancel)"
CONTINUE, REGENERATE = "continue", "regenerate bars"
MAX_BARS = 32  # the demo's limit (musegen.app.MAX_BARS)
MAX_BAR_NUMBER = 256
NEW_SEED = 0  # the seed slider's "a new seed each time"
LABEL_COLOUR = (0x80 << 24) + 0xE8_7A_1E  # HARP's colour: alpha << 24 + RGB (orange, half)


def card(models: list[str]) -> dict:
    """The JSON ``controls`` returns: the card, the inputs in ``process``'s order, the outputs."""

    def slider(label: str, lo: float, hi: float, step: float, value: float, info: str) -> dict:
        return {
            "label": label,
            "info": info,
            "minimum": lo,
            "maximum": hi,
            "step": step,
            "value": value,
            "type": "slider",
        }

    def dropdown(label: str, choices: list[str], value: str, info: str) -> dict:
        pairs = [[c, c] for c in choices]
        return {"label": label, "info": info, "choices": pairs, "value": value, "type": "dropdown"}

    return {
        "card": {
            "name": "musegen",
            "description": (
                "Continue a MIDI clip by new bars, or regenerate bars inside it so that they "
                "lead into what follows (models trained with infilling). Your notes come back "
                "unchanged; the new bars are marked."
            ),
            "author": "musegen",
            "tags": ["midi", "symbolic", "continuation", "infilling", "melody"],
        },
        "inputs": [
            {
                "label": "Input MIDI",
                "info": "the clip to work on",
                "required": True,
                "type": "midi_track",
            },
            dropdown("Model", models, models[0], "which model writes the notes"),
            dropdown(
                "Mode",
                [CONTINUE, REGENERATE],
                CONTINUE,
                "add bars after the clip, or rewrite bars inside it",
            ),
            slider("Bars to add", 1, MAX_BARS, 1, 8, "continue: how many new bars"),
            slider("From bar", 1, MAX_BAR_NUMBER, 1, 1, "regenerate: first bar, from 1"),
            slider(
                "To bar",
                1,
                MAX_BAR_NUMBER,
                1,
                4,
                f"regenerate: last bar, included (at most {MAX_GAP_BARS} bars)",
            ),
            slider(
                "Temperature",
                0.5,
                1.5,
                0.05,
                Sampling.temperature,
                "below 1 safer, above 1 more adventurous",
            ),
            slider("Seed", 0, 9999, 1, NEW_SEED, "the same seed gives the same notes; 0: new"),
        ],
        "outputs": [
            {
                "label": "Output MIDI",
                "info": "your clip with the new bars",
                "required": True,
                "type": "midi_track",
            },
            {"label": "Output Labels", "info": None, "type": "json"},
        ],
    }


def _whole(value: Any, label: str) -> int:
    """A slider's value (HARP sends numbers as floats) as a whole number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer():
        raise ConfigError(f"{label} must be a whole number (got {value!r})")
    return int(number)


def process(
    studio: Any,
    midi_path: str | None,
    model: str,
    mode: str,
    bars: float,
    first_bar: float,
    last_bar: float,
    temperature: float,
    seed: float,
    stop: Event | None = None,
) -> tuple[str, dict]:
    """Run one HARP request on ``studio`` (a `musegen.app.Studio`): the path of the MIDI
    file written and the label list that marks the new bars. ``stop``: set it to cancel."""
    if midi_path is None:
        raise ConfigError("no MIDI in the input track: put a MIDI clip on it first")
    if mode not in (CONTINUE, REGENERATE):
        raise ConfigError(f"mode must be {CONTINUE!r} or {REGENERATE!r} (got {mode!r})")
    m = studio.model(model)
    chosen = _whole(seed, "Seed")
    seed_used = draw_seed(None if chosen == NEW_SEED else chosen)
    options = {"seed": seed_used, "temperature": float(temperature), "stop": stop}
    primer = m.prepare(midi_path, limits=studio.limits)
    if mode == CONTINUE:
        n = _whole(bars, "Bars to add")
        if not 1 <= n <= MAX_BARS:
            raise ConfigError(f"Bars to add must be 1-{MAX_BARS} (got {n})")
        pm = m.to_midi(primer, m.generate_ids(primer, bars=n, **options)[0])
        start = primer.start_seconds
        end = pm.get_end_time()
        text = f"musegen: {n} new bars ({model}, seed {seed_used})"
    else:
        first, last = _whole(first_bar, "From bar"), _whole(last_bar, "To bar")
        gap = m.plan_infill(primer, first, last)
        pm = m.infill_to_midi(primer, gap, m.infill_ids(primer, gap, **options)[0])
        start = float(primer.grid.ticks_to_seconds(gap.start))
        end = float(primer.grid.ticks_to_seconds(gap.end))
        text = f"musegen: bars {first}-{last} rewritten ({model}, seed {seed_used})"
    studio.prune()  # old results go, as the page's do
    folder = studio.scratch / uuid.uuid4().hex
    folder.mkdir(parents=True)
    out = folder / f"{Path(midi_path).stem[:60] or 'clip'}_{model}.mid"
    write_pretty_midi(pm, out)
    label = {
        "label_type": "MidiLabel",
        "t": start,
        "label": text,
        "duration": max(end - start, 0.0),
        "description": text,
        "color": LABEL_COLOUR,
        "link": None,
        "pitch": 60,
    }
    return str(out), {"meta": {"_type": "pyharp.LabelList"}, "labels": [label]}


def add_endpoints(studio: Any, errors: Any, work: dict) -> None:
    """Register ``controls``, ``process`` and ``cancel`` inside the current ``gr.Blocks``, on
    components the page does not show. ``errors`` wraps a handler so that a failure reaches
    HARP as a message (`musegen.app.shown_errors`); ``work``: the page's concurrency
    settings, which ``process`` shares with its buttons."""
    import gradio as gr

    with gr.Column(visible=False):
        get_controls = gr.Button("controls")
        controls_out = gr.JSON()
        midi = gr.File(file_types=[".mid", ".midi"], type="filepath")
        model = gr.Dropdown(choices=studio.names, value=studio.names[0])
        mode = gr.Dropdown(choices=[CONTINUE, REGENERATE], value=CONTINUE)
        values = [gr.Number() for _ in range(5)]  # bars, from, to, temperature, seed
        midi_out = gr.File()
        labels_out = gr.JSON()
        run = gr.Button("process")
        halt = gr.Button("cancel")

    running_now: set[Event] = set()  # the stop events of the process calls in flight
    lock = Lock()

    def on_controls() -> dict:
        return card(studio.names)

    def on_process(*args: Any) -> tuple[str, dict]:
        stop = Event()
        with lock:
            running_now.add(stop)
        try:
            return process(studio, *args, stop=stop)
        finally:
            with lock:
                running_now.discard(stop)

    def on_cancel() -> None:
        with lock:
            for stop in running_now:
                stop.set()

    get_controls.click(on_controls, None, controls_out, api_name="controls", queue=True)
    running = run.click(
        errors(on_process),
        [midi, model, mode, *values],
        [midi_out, labels_out],
        api_name="process",
        **work,
    )
    # Not queued: a cancel must not wait behind the work it cancels.
    halt.click(on_cancel, None, None, api_name="cancel", cancels=[running], queue=False)
