"""Hear a melody: audio samples and WAV files.

FluidSynth renders with the General MIDI soundfont that ships in the pretty_midi wheel
(TimGM6mb.sf2) when pyfluidsynth and the system libfluidsynth are installed; otherwise
pretty_midi's own additive synth does (no extra dependency). Pictures are
`musegen.io.pianoroll`'s.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import wave
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pretty_midi

from musegen.errors import ConfigError

SAMPLE_RATE = 22050
TAIL_SECONDS = 1.0  # let the last note ring out

log = logging.getLogger(__name__)


def soundfont_path() -> Path | None:
    """The General MIDI soundfont bundled with pretty_midi, if present."""
    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    return path if path.is_file() else None


# FluidSynth is probed once per process, under a lock: the web demo renders in several threads,
# and concurrent first imports of pyfluidsynth without its system library have handed back a
# half-initialised module that looked usable.
_PROBE_LOCK = threading.Lock()
_fluidsynth_usable: bool | None = None
_PROBE_NOTE = (60, 0.0, 0.1)  # pitch, start, end: one short note is enough to prove rendering


def fluidsynth_available() -> bool:
    """Whether FluidSynth renders here: pyfluidsynth, the system libfluidsynth and the bundled
    soundfont all present and working. Decided once per process, thread-safely, by rendering
    one short note; later calls return the cached answer."""
    global _fluidsynth_usable
    with _PROBE_LOCK:
        if _fluidsynth_usable is None:
            _fluidsynth_usable = _probe_fluidsynth()
        return _fluidsynth_usable


def forget_audio_probe() -> None:
    """Probe FluidSynth again on the next render (after installing it, and in tests)."""
    global _fluidsynth_usable
    with _PROBE_LOCK:
        _fluidsynth_usable = None


def _probe_fluidsynth() -> bool:
    sf2 = soundfont_path()
    if sf2 is None:
        return False
    try:
        import fluidsynth  # noqa: F401  (pyfluidsynth; ImportError without libfluidsynth)
    except Exception:  # ImportError, OSError from ctypes, or anything else: not usable
        return False
    pitch, start, end = _PROBE_NOTE
    probe = pretty_midi.PrettyMIDI()
    probe.instruments.append(pretty_midi.Instrument(0))
    probe.instruments[0].notes.append(pretty_midi.Note(100, pitch, start, end))
    try:
        audio = _fluidsynth(probe, SAMPLE_RATE)
    except Exception:
        return False
    return bool(len(audio)) and bool(np.isfinite(audio).all())


def _new_synth(sample_rate: int):  # -> (fluidsynth.Synth, soundfont id)
    """A synthesizer at ``sample_rate`` with the bundled soundfont. Each render gets a new
    one: a synthesizer's output depends on how long it has run (its reverb's modulation, its
    64-sample blocks), so a kept one would not play the same music the same way twice."""
    import fluidsynth

    synth = fluidsynth.Synth(samplerate=sample_rate)
    sfid = synth.sfload(str(soundfont_path()))
    if sfid < 0:
        synth.delete()
        raise RuntimeError(f"FluidSynth could not load {soundfont_path()}")
    return synth, sfid


def _fluidsynth(pm: pretty_midi.PrettyMIDI, sample_rate: int) -> np.ndarray:
    """``pm``'s instruments rendered by FluidSynth one after another on one new synthesizer,
    reset before each (pretty_midi's own ``fluidsynth`` lets a pedal, a bend or a ringing
    note of one instrument carry into the next), and summed, unscaled; raises where it
    cannot render."""
    instruments = [i for i in pm.instruments if i.notes]
    if not instruments:
        return np.zeros(0, dtype=np.float32)
    synth, sfid = _new_synth(sample_rate)
    try:
        waves = []
        for inst in instruments:
            synth.system_reset()  # sounds off, controllers and programs as at start
            waves.append(inst.fluidsynth(synthesizer=synth, sfid=sfid))
    finally:
        synth.delete()
    return _mixed(waves)


def _plain(pm: pretty_midi.PrettyMIDI, sample_rate: int) -> np.ndarray:
    """pretty_midi's additive synth per instrument, summed, unscaled (drums are silent)."""
    return _mixed([i.synthesize(fs=sample_rate) for i in pm.instruments if not i.is_drum])


def _mixed(waves: list[np.ndarray]) -> np.ndarray:
    """The sum of waveforms that all start at time 0 (float32, as long as the longest)."""
    out = np.zeros(max((len(w) for w in waves), default=0), dtype=np.float32)
    for w in waves:
        out[: len(w)] += np.nan_to_num(w)
    return out


Split = float | tuple[float, float]
SPLIT_TOLERANCE = 1e-4  # s: generated notes are timed on a finer grid than a split


def is_new(time: float, split: Split) -> bool:
    """Whether a note starting at ``time`` seconds is new: at or after ``split`` seconds, or
    inside the span ``split`` = (start, end); up to `SPLIT_TOLERANCE` early counts."""
    lo, hi = split if isinstance(split, tuple) else (split, math.inf)
    return lo - SPLIT_TOLERANCE <= time < hi - SPLIT_TOLERANCE


def _parts(
    pm: pretty_midi.PrettyMIDI, split: Split
) -> tuple[pretty_midi.PrettyMIDI, pretty_midi.PrettyMIDI]:
    """``pm`` as the music a take keeps and its new notes (`is_new`), to render apart.

    The kept part has every bend and controller change (the state its notes play in). The
    new part has those from the split on, led by all the earlier ones replayed in order just
    before it: a pedal held down, a volume or a pitch-bend range set earlier hold for the
    new notes as in the whole. Each instrument is in both, perhaps without notes."""
    lo = split[0] if isinstance(split, tuple) else split
    lead = lo - 2 * SPLIT_TOLERANCE  # before the earliest new note
    kept, new = pretty_midi.PrettyMIDI(), pretty_midi.PrettyMIDI()
    for inst in pm.instruments:
        old = pretty_midi.Instrument(inst.program, inst.is_drum, inst.name)
        old.notes = [n for n in inst.notes if not is_new(n.start, split)]
        old.pitch_bends = list(inst.pitch_bends)
        old.control_changes = list(inst.control_changes)
        part = pretty_midi.Instrument(inst.program, inst.is_drum, inst.name)
        part.notes = [n for n in inst.notes if is_new(n.start, split)]
        bends = sorted(inst.pitch_bends, key=lambda b: b.time)  # stable: same-time order kept
        earlier = [b for b in bends if b.time < lead]
        part.pitch_bends = [pretty_midi.PitchBend(earlier[-1].pitch, lead)] if earlier else []
        part.pitch_bends += [b for b in bends if b.time >= lead]
        changes = sorted(inst.control_changes, key=lambda c: c.time)
        part.control_changes = [
            pretty_midi.ControlChange(c.number, c.value, lead) for c in changes if c.time < lead
        ]
        part.control_changes += [c for c in changes if c.time >= lead]
        kept.instruments.append(old)
        new.instruments.append(part)
    return kept, new


def _content(pm: pretty_midi.PrettyMIDI) -> tuple:
    """What a render of ``pm`` depends on, hashable (instruments without notes are silent)."""
    return tuple(
        (
            inst.program,
            inst.is_drum,
            tuple((n.start, n.end, n.pitch, n.velocity) for n in inst.notes),
            tuple((b.time, b.pitch) for b in inst.pitch_bends),
            tuple((c.time, c.number, c.value) for c in inst.control_changes),
        )
        for inst in pm.instruments
        if inst.notes
    )


class Renders:
    """Unscaled renders of music that takes share, kept by content, the last used first, up
    to ``max_bytes`` in all (64 MB: a dozen 1-minute clips at 22,050 Hz).

    The web demo renders a clip for its preview, and then every continuation of it, every
    variation and every new take, starts with the same notes: kept here, only the new bars
    are rendered again (`synthesize` with ``split``). Thread-safe."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._kept: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            wave = self._kept.get(key)
            if wave is not None:
                self._kept.move_to_end(key)
            return wave

    def put(self, key: tuple, wave: np.ndarray) -> None:
        """Keep ``wave`` (made read-only: takes share it); one larger than ``max_bytes`` is
        not kept."""
        if wave.nbytes > self.max_bytes:
            return
        wave.setflags(write=False)
        with self._lock:
            self._kept[key] = wave
            while sum(w.nbytes for w in self._kept.values()) > self.max_bytes:
                self._kept.popitem(last=False)


def _render(
    parts: list[pretty_midi.PrettyMIDI], sample_rate: int, backend: str, kept: Renders | None
) -> np.ndarray:
    """The parts rendered and mixed, the first taken from ``kept`` when there (and kept)."""
    synth = _fluidsynth if backend == "fluidsynth" else _plain
    first, *rest = parts
    key = (backend, sample_rate, _content(first))
    wave = kept.get(key) if kept is not None else None
    if wave is None:
        wave = synth(first, sample_rate)
        if kept is not None:
            kept.put(key, wave)
    return _mixed([wave, *(synth(part, sample_rate) for part in rest)]) if rest else wave


def synthesize(
    pm: pretty_midi.PrettyMIDI,
    sample_rate: int = SAMPLE_RATE,
    *,
    backend: str = "auto",
    split: Split | None = None,
    kept: Renders | None = None,
) -> tuple[np.ndarray, str]:
    """Render ``pm`` to mono float32 audio in [-1, 1]; returns (samples, backend used).

    ``backend``: "auto" (FluidSynth when available, else the plain synth), "fluidsynth" or
    "plain". With "auto" any failure of FluidSynth falls back to the plain synth (logged), so
    rendering never fails for want of a system library. The audio is as long as the music
    plus a short tail, and peaks at 0.9 (silence stays silent).

    ``split`` (seconds, or a span (start, end) of seconds): the notes from there on (inside
    the span) are new (`is_new`), the others the music they continue. The two are rendered
    apart and mixed (`_parts`), the others taken from ``kept`` when an earlier take rendered
    the same (a clip's preview, another variation): a continuation then renders only its
    new bars. Without ``split``, ``kept`` keeps (or gives) the whole render. Instruments are
    rendered apart anyway, so a take sounds the same either way; its samples differ a little
    (a new note may start up to 64 samples, 3 ms, apart: FluidSynth starts notes on blocks
    counted from when it began).
    """
    if backend not in ("auto", "fluidsynth", "plain"):
        raise ConfigError(f"audio backend must be auto, fluidsynth or plain (got {backend!r})")
    if not 8000 <= sample_rate <= 96000:
        raise ConfigError(f"sample rate must be 8000-96000 Hz (got {sample_rate})")
    if isinstance(split, tuple) and not split[0] <= split[1]:
        raise ConfigError(f"a split span must end after it starts (got {split})")
    if backend == "fluidsynth" and not fluidsynth_available():
        raise ConfigError(
            "FluidSynth is not available: install pyfluidsynth and the system libfluidsynth "
            "(Debian: apt install libfluidsynth3), or use the plain synth"
        )
    parts = [pm] if split is None else list(_parts(pm, split))
    audio, used = None, "plain"
    if backend != "plain" and fluidsynth_available():
        try:
            audio, used = _render(parts, sample_rate, "fluidsynth", kept), "fluidsynth"
        except Exception as e:
            if backend == "fluidsynth":
                raise ConfigError(f"FluidSynth could not render this music: {e}") from e
            log.warning("FluidSynth failed (%s: %s); using the plain synth", type(e).__name__, e)
    if audio is None:
        audio = _render(parts, sample_rate, "plain", kept)
    length = int((pm.get_end_time() + TAIL_SECONDS) * sample_rate)
    out = np.zeros(length, dtype=np.float32)
    n = min(length, len(audio))
    out[:n] = audio[:n]
    peak = float(np.abs(out).max(initial=0.0))
    if peak > 0:
        out *= 0.9 / peak
    return out, used


def wav_bytes(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """Mono float samples in [-1, 1] as a 16-bit PCM WAV file."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def write_wav(
    pm: pretty_midi.PrettyMIDI,
    path: str | Path,
    sample_rate: int = SAMPLE_RATE,
    *,
    split: Split | None = None,
    kept: Renders | None = None,
) -> str:
    """Render ``pm`` (see `synthesize`) and write it as a WAV file; returns the backend
    used."""
    samples, used = synthesize(pm, sample_rate, split=split, kept=kept)
    Path(path).write_bytes(wav_bytes(samples, sample_rate))
    return used
