"""The web demo: upload a melody, hear and see its continuation (Gradio, the ``demo`` extra).

    musegen demo                      # http://127.0.0.1:7860
    python demo/app.py --port 7861

`Studio` does the work (load models once, continue, render audio and piano rolls into a
scratch folder); `build_app` lays it out as a Gradio page whose generate button is also the
API endpoint ``/continue``:

    from gradio_client import Client, handle_file
    c = Client("http://127.0.0.1:7860/")
    midi, audio, roll, *rest, status = c.predict(handle_file("tune.mid"), api_name="/continue")
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from musegen import harp
from musegen.checkpoint import examples_dir
from musegen.errors import ConfigError, MidiError, MuseGenError
from musegen.generate.muse import MuseGen, Primer, load
from musegen.generate.theory import MODES, NOTE_NAMES
from musegen.io.audio import Renders, Split, write_wav
from musegen.io.midi_out import write_pretty_midi
from musegen.io.pianoroll import piano_roll
from musegen.midi import DEFAULT_LIMITS, Limits, list_tracks, read_score
from musegen.options import (
    ARCHITECTURES,
    DEFAULT_MODEL,
    DEFAULT_QUANTIZE,
    INFILL_CANDIDATES,
    Sampling,
    draw_seed,
)
from musegen.quantize import MODES as QUANTIZE_MODES

if TYPE_CHECKING:
    import pretty_midi

MAX_VARIATIONS = 4  # result slots on the page
MAX_BARS = 32
ALL_TRACKS = "all tracks"
KEYS = ["auto", "none"] + [f"{t} {m}" for m in MODES if m != "chromatic" for t in NOTE_NAMES]
SCRATCH_MAX_AGE_S = 3600  # rendered files older than this are deleted
CONCURRENCY = 2  # generations at once (2 cores); the rest wait in the queue
QUEUE_SIZE = 32  # waiting requests beyond this are refused with a message
NEW_SEED = -1  # the seed box's "draw a new seed each press" (an empty box is that too)
# The library's default key (the CLI's too), as the menu spells it: None is "none".
DEFAULT_KEY = inspect.signature(MuseGen.continue_midi).parameters["key"].default or "none"
log = logging.getLogger(__name__)
# Tighter than the library's limits: every upload is rendered to audio and drawn, on a shared
# server. A melody to continue is minutes long at most.
DEMO_LIMITS = Limits(max_notes=20_000, max_quarters=4_096, max_seconds=900.0)


class _Take(NamedTuple):
    """A result to render: the music, where its new notes start (seconds, or the span of
    regenerated bars), the piano roll's title, the files' name, and whether it is a clip of
    the user's whose audio takes will reuse (a preview)."""

    pm: pretty_midi.PrettyMIDI
    split: Split | None
    title: str
    stem: str
    clip: bool = False


@dataclass
class Rendered:
    """One continuation as files: MIDI, WAV and piano-roll PNG."""

    midi: str
    audio: str
    roll: str


def parse_track(choice: str | int | None) -> int | None:
    """ "all tracks" / None -> None; "2: Flute (40 notes)" or 2 -> 2."""
    if choice is None or choice == "" or choice == ALL_TRACKS:
        return None
    text = str(choice).split(":", 1)[0].strip()
    if not text.isdigit():
        raise ConfigError(f"track must be {ALL_TRACKS!r} or a track number (got {choice!r})")
    return int(text)


def _stem(path: str | Path) -> str:
    """A safe file-name stem from an uploaded file's name."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(path).stem)[:60]
    return stem or "melody"


class Studio:
    """The demo's engine: shipped models loaded once, files rendered into one scratch folder."""

    def __init__(
        self,
        scratch: str | Path | None = None,
        device: str = "cpu",
        threads: int | None = None,
        checkpoints: dict[str, str | Path] | None = None,
    ) -> None:
        self.scratch = Path(scratch or tempfile.mkdtemp(prefix="musegen-demo-"))
        self.scratch.mkdir(parents=True, exist_ok=True)
        self.device = device
        self.limits = DEMO_LIMITS  # the largest upload it reads
        self.threads = threads  # see musegen.load
        # the shipped models, then the user's own checkpoints by name
        self.sources: dict[str, str | Path] = {name: name for name in ARCHITECTURES}
        self.sources |= checkpoints or {}
        self._models: dict[str, MuseGen] = {}
        self._lock = threading.Lock()
        # reads uploaded clips into the models ahead of Continue, one at a time (see warm);
        # only the latest reading waits its turn
        self._warming = ThreadPoolExecutor(1, thread_name_prefix="musegen-warm")
        self._waiting: Future | None = None
        self._waiting_lock = threading.Lock()
        # a clip's audio, rendered for its preview, is reused by its takes (only their new
        # bars are rendered)
        self.renders = Renders()

    @property
    def names(self) -> list[str]:
        """The models the page offers."""
        return list(self.sources)

    def model(self, name: str) -> MuseGen:
        """The model ``name`` (shipped, or a checkpoint given to the studio), loaded on first
        use and kept."""
        if name not in self.sources:
            raise ConfigError(f"model must be one of {', '.join(self.sources)} (got {name!r})")
        if name in self._models:
            return self._models[name]
        with self._lock:
            if name not in self._models:
                self._models[name] = load(
                    self.sources[name], device=self.device, threads=self.threads
                )
            return self._models[name]

    def close(self) -> None:
        """Stop reading ahead; delete the scratch folder and everything rendered into it."""
        self._warming.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def warm(
        self,
        midi_path: str | None,
        track: str | int | None = None,
        model: str = DEFAULT_MODEL,
        quantize: str = DEFAULT_QUANTIZE,
    ) -> Future | None:
        """Read the clip into ``model`` in the background, as Continue will read it, so that
        pressing Continue does not wait for the model to read the clip (`MuseGen.warm`).
        The page calls this when the model or quantize choice changes; `preview` does it for
        uploads and track changes.
        Returns the background job (its result: whether the model kept the reading)."""
        if midi_path is None:
            return None
        m = self.model(model)
        primer = _primer(m, midi_path, track, quantize)
        return self._read_ahead(m, primer)

    def _read_ahead(self, m: MuseGen, primer: Primer) -> Future | None:
        """Hand ``primer`` to the reading thread. A reading still waiting there is dropped:
        the clip or the choices it was for have changed since, or another upload came
        (Continue reads what was not read ahead). None once the studio is closed."""
        with self._waiting_lock:
            if self._waiting is not None:
                self._waiting.cancel()  # only if it has not started
            try:
                self._waiting = self._warming.submit(_warm_quietly, m, primer)
            except RuntimeError:  # closed
                return None
            return self._waiting

    def idle(self) -> None:
        """Wait until the clips handed to `warm` have been read."""
        self._warming.submit(lambda: None).result()

    def prune(self, max_age_s: float = SCRATCH_MAX_AGE_S) -> None:
        """Delete the folders of requests older than ``max_age_s``."""
        cutoff = time.time() - max_age_s
        for d in self.scratch.iterdir():
            try:
                if d.stat().st_mtime < cutoff:
                    shutil.rmtree(d) if d.is_dir() else d.unlink()
            except OSError:
                pass  # another request removed it

    def _render(self, items: list[_Take]) -> list[Rendered]:
        """Write MIDI, WAV and PNG of each take in ``items``, named its ``stem``, into a
        fresh folder of their own. The audio renders on a second thread while the piano
        rolls are drawn (FluidSynth runs without the GIL)."""
        self.prune()
        rendered = []
        for pm, _, _, stem, _ in items:
            folder = self.scratch / uuid.uuid4().hex
            folder.mkdir(parents=True)
            midi, audio, roll = (str(folder / f"{stem}{ext}") for ext in (".mid", ".wav", ".png"))
            write_pretty_midi(pm, midi)
            rendered.append(Rendered(midi, audio, roll))
        with ThreadPoolExecutor(1, thread_name_prefix="musegen-audio") as audio_thread:
            waves = []
            for (pm, split, _, _, clip), r in zip(items, rendered, strict=True):
                # a clip's render is kept; a take with a split reuses (or keeps) its old part
                kept = self.renders if clip or split is not None else None
                waves.append(audio_thread.submit(write_wav, pm, r.audio, split=split, kept=kept))
            for (pm, split, title, *_), r in zip(items, rendered, strict=True):
                piano_roll(pm, r.roll, split=split, title=title)
            for w in waves:
                w.result()
        return rendered

    def tracks(self, midi_path: str) -> list[str]:
        """Choices for the track menu: all tracks, then each track with notes."""
        read_score(midi_path, limits=DEMO_LIMITS)  # list_tracks checks size, not duration
        infos = list_tracks(midi_path, limits=DEMO_LIMITS)
        named = [
            f"{t.index}: {t.name or 'untitled'} ({t.notes} notes{', drums' if t.is_drum else ''})"
            for t in infos
            if t.notes
        ]
        return [ALL_TRACKS] + named

    def preview(
        self,
        midi_path: str,
        track: str | int | None = None,
        model: str = DEFAULT_MODEL,
        quantize: str = DEFAULT_QUANTIZE,
    ) -> Rendered:
        """The primer alone, as ``model`` will read it (notes of the chosen track); the model
        reads it in the background meanwhile (`warm`)."""
        m = self.model(model)
        primer = _primer(m, midi_path, track, quantize)
        self._read_ahead(m, primer)
        pm = m.to_midi(primer, [])
        return self._render([_Take(pm, None, "your melody", _stem(midi_path), clip=True)])[0]

    def continue_midi(
        self,
        midi_path: str | None,
        *,
        track: str | int | None = None,
        model: str = DEFAULT_MODEL,
        bars: int = 8,
        temperature: float = Sampling.temperature,
        top_p: float | None = Sampling.top_p,
        key: str = DEFAULT_KEY,
        variations: int = 1,
        seed: int | None = None,
        quantize: str = DEFAULT_QUANTIZE,
    ) -> tuple[list[Rendered], str]:
        """Continue ``midi_path`` (None: compose from scratch); returns the rendered
        variations and a one-line summary with the time taken (and the seed, drawn at random
        when ``seed`` is None, so that a result can be made again)."""
        _check_variations(variations)
        if not isinstance(bars, int) or not 1 <= bars <= MAX_BARS:
            raise ConfigError(f"bars must be 1-{MAX_BARS} in the demo (got {bars})")
        seed = draw_seed(seed)
        m = self.model(model)
        key_arg = _key_arg(key, midi_path is not None)
        t0 = time.perf_counter()
        primer = _primer(m, midi_path, track, quantize)
        rows = m.generate_ids(
            primer,
            n=variations,
            bars=bars,
            seed=seed,
            key=key_arg,
            temperature=temperature,
            top_p=_top_p(top_p),
        )
        pms = [m.to_midi(primer, r) for r in rows]
        seconds = time.perf_counter() - t0
        split = primer.start_seconds if midi_path is not None else None
        stem = _stem(midi_path) if midi_path is not None else "new_tune"
        results = self._render(
            [
                _Take(pm, split, f"{model} - variation {i + 1}", f"{stem}_{model}_{i + 1}")
                for i, pm in enumerate(pms)
            ]
        )
        notes = sum(len(inst.notes) for pm in pms for inst in pm.instruments)
        summary = (
            f"{variations} x {bars} bars with {model} in {seconds * 1000:.0f} ms "
            f"(seed {seed}; {notes} notes in all, primer included)"
        )
        return results, summary + _reading(m, primer, key_arg)

    def infill(
        self,
        midi_path: str | None,
        first_bar: int,
        last_bar: int,
        *,
        track: str | int | None = None,
        model: str = DEFAULT_MODEL,
        temperature: float = Sampling.temperature,
        top_p: float | None = Sampling.top_p,
        key: str = DEFAULT_KEY,
        variations: int = 1,
        seed: int | None = None,
        quantize: str = DEFAULT_QUANTIZE,
        candidates: int = INFILL_CANDIDATES,
    ) -> tuple[list[Rendered], str]:
        """Regenerate bars ``first_bar``-``last_bar`` (1-based, included) of ``midi_path``;
        returns the rendered variations (the new bars shaded in the piano roll) and a
        one-line summary, as `continue_midi`. ``candidates`` as `MuseGen.infill`."""
        if midi_path is None:
            raise ConfigError("upload a MIDI clip first: regenerating bars needs a clip")
        _check_variations(variations)
        seed = draw_seed(seed)
        m = self.model(model)
        key_arg = _key_arg(key, True)
        t0 = time.perf_counter()
        primer = _primer(m, midi_path, track, quantize)
        gap = m.plan_infill(primer, first_bar, last_bar)
        rows = m.infill_ids(
            primer,
            gap,
            n=variations,
            seed=seed,
            key=key_arg,
            temperature=temperature,
            top_p=_top_p(top_p),
            candidates=candidates,
        )
        pms = [m.infill_to_midi(primer, gap, r) for r in rows]
        seconds = time.perf_counter() - t0
        span = (
            float(primer.grid.ticks_to_seconds(gap.start)),
            float(primer.grid.ticks_to_seconds(gap.end)),
        )
        stem = f"{_stem(midi_path)}_bars{first_bar}-{last_bar}_{model}"
        results = self._render(
            [
                _Take(
                    pm,
                    span,
                    f"{model} - bars {first_bar}-{last_bar}, variation {i + 1}",
                    f"{stem}_{i + 1}",
                )
                for i, pm in enumerate(pms)
            ]
        )
        summary = (
            f"{variations} x bars {first_bar}-{last_bar} regenerated with {model} in "
            f"{seconds * 1000:.0f} ms (seed {seed}; everything outside them is yours, unchanged)"
        )
        return results, summary + _reading(m, primer, key_arg)


def _primer(m: MuseGen, midi_path: str | None, track: str | int | None, quantize: str) -> Primer:
    """The clip as ``m`` reads it, the same way for the preview, the reading ahead, Continue
    and Regenerate (so what is read ahead is what Continue asks for)."""
    return m.prepare(midi_path, track=parse_track(track), limits=DEMO_LIMITS, quantize=quantize)


def _warm_quietly(m: MuseGen, primer: Primer) -> bool:
    """`MuseGen.warm`, a failure logged: reading ahead only saves time, Continue reads the
    clip itself when the reading is missing."""
    try:
        return m.warm(primer)
    except Exception:
        log.exception("reading the clip ahead of Continue failed")
        return False


def _check_variations(variations: int) -> None:
    if not isinstance(variations, int) or not 1 <= variations <= MAX_VARIATIONS:
        raise ConfigError(f"variations must be 1-{MAX_VARIATIONS} (got {variations})")


def _key_arg(key: str | None, has_clip: bool) -> str | None:
    """The menu's key as the library takes it: "none" is None; "auto" needs a clip."""
    key_arg = None if key in (None, "", "none") else key
    return None if key_arg == "auto" and not has_clip else key_arg


def _top_p(top_p: float | None) -> float | None:
    return top_p if top_p is not None and top_p < 1.0 else None


def _reading(m: MuseGen, primer, key_arg: str | None) -> str:
    """What the summary adds about how the clip was read (detected key, tracks read as one
    part, played-in grid)."""
    extra = ""
    if len(primer.grid.tracks) > 1:
        names = ", ".join(t.name or "untitled" for t in primer.grid.tracks)
        extra += f"; read {len(primer.grid.tracks)} tracks as one part ({names}): pick one above"
    if key_arg is not None and key_arg.strip().lower() == "auto":
        extra += f"; key {m.key_of(primer)} (detected)"
    if primer.quantized:
        extra += f"; played-in timing read on a {primer.quantized} grid, your notes kept"
    return extra


# ------------------------------------------------------------------ the page


def shown_errors(handler: Callable) -> Callable:
    """Wrap a page handler so that every failure reaches the page as a message, never a bare
    "Error": a `MuseGenError` says what to do; anything else is logged with its traceback and
    named in the page."""
    import gradio as gr

    @functools.wraps(handler)  # gradio reads the handler's parameters through __wrapped__
    def wrapper(*args: Any) -> Any:
        try:
            return handler(*args)
        except gr.Error:
            raise
        except MuseGenError as e:
            raise gr.Error(str(e), title="Cannot do that") from None
        except Exception as e:
            log.exception("demo: %s failed", handler.__name__)
            raise gr.Error(
                f"Something went wrong on the server ({type(e).__name__}: {e}). Try again; if "
                "it happens again, please report it with the file and the options you used.",
                title="Server error",
            ) from None

    return wrapper


def _slots(results: list[Rendered]) -> list[Any]:
    """MIDI, audio and piano roll of each result slot (None for the unused ones)."""
    outputs: list[Any] = []
    for i in range(MAX_VARIATIONS):
        r = results[i] if i < len(results) else None
        outputs += [r.midi, r.audio, r.roll] if r else [None, None, None]
    return outputs


def _page_options(track, model, temperature, top_p, key, variations, seed, quantize) -> dict:
    """The page's option widgets' values as `Studio` takes them (seed -1: a new one)."""
    return dict(
        track=track,
        model=model,
        temperature=float(temperature),
        top_p=float(top_p),
        key=key,
        variations=int(variations),
        seed=None if seed is None or int(seed) == NEW_SEED else int(seed),
        quantize=quantize,
    )


def _whole_bar(value: Any, label: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not number.is_integer():
        raise ConfigError(f"{label} must be a bar number (1, 2, ...), got {value!r}")
    return int(number)


def build_app(studio: Studio | None = None):
    """The Gradio Blocks app over ``studio`` (a new one if not given)."""
    try:
        import gradio as gr
    except ImportError as e:
        raise ConfigError("the web demo needs gradio: pip install 'musegen[demo]'") from e

    studio = studio or Studio()

    def on_upload(midi_path: str | None, model: str, quantize: str = DEFAULT_QUANTIZE):
        if midi_path is None:
            return gr.Dropdown(choices=[ALL_TRACKS], value=ALL_TRACKS), None, None
        choices = studio.tracks(midi_path)
        menu = gr.Dropdown(choices=choices, value=ALL_TRACKS)
        try:
            primer = studio.preview(midi_path, None, model, quantize)
        except MidiError as e:  # e.g. only drum notes: the user can still pick a track
            gr.Warning(f"{e} Pick a track above to hear and see it (drums cannot be continued).")
            return menu, None, None
        return menu, primer.audio, primer.roll

    def on_track(midi_path: str | None, track: str, model: str, quantize: str = DEFAULT_QUANTIZE):
        if midi_path is None:
            return None, None
        primer = studio.preview(midi_path, track, model, quantize)
        return primer.audio, primer.roll

    def on_reading_choice(midi_path: str | None, track: str, model: str, quantize: str) -> None:
        """Read the clip into the model anew when the model or the quantize choice changes.
        Only a head start: a clip that cannot be read this way says so when Continue is
        pressed, and any other failure is logged."""
        try:
            studio.warm(midi_path, track, model, quantize)
        except MuseGenError:
            pass
        except Exception:
            log.exception("reading the clip ahead of Continue failed")

    def on_continue(
        midi_path,
        track,
        model,
        bars,
        temperature,
        top_p,
        key,
        variations,
        seed,
        quantize=DEFAULT_QUANTIZE,
    ):
        options = _page_options(track, model, temperature, top_p, key, variations, seed, quantize)
        results, summary = studio.continue_midi(midi_path, bars=int(bars), **options)
        return [*_slots(results), summary]

    def on_infill(
        midi_path,
        track,
        model,
        first_bar,
        last_bar,
        temperature,
        top_p,
        key,
        variations,
        seed,
        quantize=DEFAULT_QUANTIZE,
    ):
        options = _page_options(track, model, temperature, top_p, key, variations, seed, quantize)
        first, last = _whole_bar(first_bar, "from bar"), _whole_bar(last_bar, "to bar")
        results, summary = studio.infill(midi_path, first, last, **options)
        return [*_slots(results), summary]

    def show_slots(variations):
        n = int(variations)
        return [gr.Column(visible=i < n) for i in range(MAX_VARIATIONS)]

    with gr.Blocks(title="musegen", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown(
            "# musegen\nUpload a MIDI melody (or pick an example) and press **Continue**: "
            "the model writes the next bars. Listen, look, download."
        )
        with gr.Row():
            with gr.Column(scale=1, min_width=320):
                midi_in = gr.File(
                    label="Your melody (.mid)", file_types=[".mid", ".midi"], elem_id="midi-in"
                )
                ex = examples_dir()
                if ex is not None:
                    gr.Examples(
                        examples=[[str(p)] for p in sorted(ex.glob("*.mid"))],
                        inputs=[midi_in],
                        label="Example melodies",
                    )
                track = gr.Dropdown(
                    [ALL_TRACKS], value=ALL_TRACKS, label="Track", allow_custom_value=True
                )
                model = gr.Radio(studio.names, value=DEFAULT_MODEL, label="Model")
                bars = gr.Slider(1, MAX_BARS, value=8, step=1, label="Bars to add")
                with gr.Accordion("More options", open=False):
                    temperature = gr.Slider(
                        0.1, 2.0, value=Sampling.temperature, step=0.05, label="Temperature"
                    )
                    top_p = gr.Slider(
                        0.5, 1.0, value=Sampling.top_p, step=0.01, label="Top-p (1 = off)"
                    )
                    key = gr.Dropdown(
                        KEYS,
                        value=DEFAULT_KEY,
                        label="Key (auto: the melody's; none: any note)",
                    )
                    variations = gr.Slider(1, MAX_VARIATIONS, value=1, step=1, label="Variations")
                    quantize = gr.Dropdown(
                        list(QUANTIZE_MODES),
                        value=DEFAULT_QUANTIZE,
                        label="Quantize (how the model reads played-in timing; yours is kept)",
                    )
                    seed = gr.Number(
                        value=NEW_SEED,
                        precision=0,
                        label=f"Seed ({NEW_SEED}: a new one each press; the summary shows it)",
                    )
                go = gr.Button("Continue", variant="primary", elem_id="continue")
                with gr.Accordion("Regenerate bars inside the clip", open=False):
                    gr.Markdown(
                        "New bars in place of the ones chosen, leading into the bar after "
                        "them; the rest of the clip stays as it is. Needs a model trained "
                        "with infilling."
                    )
                    with gr.Row():
                        first_bar = gr.Number(
                            value=1, precision=0, minimum=1, label="From bar", elem_id="from-bar"
                        )
                        last_bar = gr.Number(
                            value=2, precision=0, minimum=1, label="To bar", elem_id="to-bar"
                        )
                    regenerate = gr.Button("Regenerate bars", elem_id="infill")
            with gr.Column(scale=2):
                status = gr.Markdown("", elem_id="status")
                slots, outputs = [], []
                for i in range(MAX_VARIATIONS):
                    with gr.Column(visible=i == 0) as slot:
                        roll = gr.Image(
                            label=f"Piano roll {i + 1} (grey: yours, orange: new)",
                            type="filepath",
                            elem_id=f"roll-{i + 1}",
                        )
                        audio = gr.Audio(
                            label=f"Listen {i + 1}", type="filepath", elem_id=f"audio-{i + 1}"
                        )
                        midi = gr.File(label=f"Download MIDI {i + 1}", elem_id=f"midi-{i + 1}")
                    slots.append(slot)
                    outputs += [midi, audio, roll]
                with gr.Accordion("Your melody", open=True):
                    primer_roll = gr.Image(
                        label="Piano roll", type="filepath", elem_id="primer-roll"
                    )
                    primer_audio = gr.Audio(label="Listen", type="filepath")

        options = [temperature, top_p, key, variations, seed, quantize]  # both buttons' options
        # One concurrency group for all rendering work: at most CONCURRENCY jobs in all.
        work = dict(concurrency_id="work", concurrency_limit=CONCURRENCY)
        midi_in.change(
            shown_errors(on_upload),
            [midi_in, model, quantize],
            [track, primer_audio, primer_roll],
            api_visibility="private",
            **work,
        )
        track.input(
            shown_errors(on_track),
            [midi_in, track, model, quantize],
            [primer_audio, primer_roll],
            api_visibility="private",
            **work,
        )
        for choice in (model, quantize):
            choice.input(
                on_reading_choice, [midi_in, track, model, quantize], [], api_visibility="private"
            )
        go.click(
            shown_errors(on_continue),
            [midi_in, track, model, bars, *options],
            [*outputs, status],
            api_name="continue",
            **work,
            api_description="Continue a MIDI melody: returns, per variation slot, the MIDI "
            "file, the audio and the piano roll (None for unused slots), then a summary.",
        ).success(show_slots, [variations], slots, api_visibility="private")
        regenerate.click(
            shown_errors(on_infill),
            [midi_in, track, model, first_bar, last_bar, *options],
            [*outputs, status],
            api_name="infill",
            **work,
            api_description="Regenerate bars FROM-TO (numbered from 1, both included) of a "
            "MIDI clip: outputs as /continue; the notes outside the bars are kept unchanged.",
        ).success(show_slots, [variations], slots, api_visibility="private")
        harp.add_endpoints(studio, shown_errors, work)  # the DAW plugin's protocol
    app.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    return app


def launch(
    host: str = "127.0.0.1",
    port: int = 7860,
    *,
    block: bool = True,
    studio: Studio | None = None,
    announce: Callable[[str], None] | None = None,
    threads: int | None = None,
    checkpoints: dict[str, str | Path] | None = None,
):
    """Start the demo on ``host:port``; with ``block=False`` return the running app.

    ``announce`` is called with the page's address once the server is up (the CLI prints
    it). Gradio's own start-up lines (among them a ``share=True`` hint a CLI user cannot act
    on) are silenced. ``threads`` as in `musegen.load` and ``checkpoints`` (name -> checkpoint
    dir, offered beside the shipped models) as in `Studio`, for a new studio."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError as e:
        raise ConfigError("the web demo needs gradio: pip install 'musegen[demo]'") from e

    studio = studio or Studio(threads=threads, checkpoints=checkpoints)
    studio.model(DEFAULT_MODEL)  # the first click should not wait for loading
    app = build_app(studio)
    theme = gr.themes.Soft(
        font=["ui-sans-serif", "system-ui", "sans-serif"],  # no web fonts: works offline
        font_mono=["ui-monospace", "monospace"],
    )
    try:
        app.launch(
            server_name=host,
            server_port=port,
            prevent_thread_lock=True,
            max_file_size=DEFAULT_LIMITS.max_file_bytes,
            allowed_paths=[str(studio.scratch)],
            theme=theme,
            ssr_mode=False,
            quiet=True,
            share=False,
            footer_links=["api"],
        )
    except OSError as e:
        raise ConfigError(
            f"cannot serve on {host}:{port} ({e}); is the port in use? pass --port N"
        ) from e
    if announce is not None:
        announce(app.local_url or f"http://{host}:{port}/")
    if block:
        app.block_thread()
    return app
