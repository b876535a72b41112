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
    """A synthesizer at ``sample_rate`` with the bundled soundfont, chorus off: General MIDI
    sends nothing to chorus unless a clip raises CC 93, and the idle effect took a sixth of
    the rendering time (a 38-bar melody: 168 ms with it, 140 without, the same samples).

    Each render gets a new one: a synthesizer's output depends on how long it has run (its
    reverb's modulation, its 64-sample blocks), so a kept one would not play the same music
    the same way twice."""
    import fluidsynth

    synth = fluidsynth.Synth(samplerate=sample_rate)
    synth.setting("synth.chorus.active", 0)
    sfid = synth.sfload(str(soundfont_path()))
    if sfid < 0:
        synth.delete()
        raise RuntimeError(f"FluidSynth could not load {soundfont_path()}")
    return synth, sfid


def _fluidsynth(pm: pretty_midi.PrettyMIDI, sample_rate: int) -> np.ndarray:
    """``pm``'s instruments rendered by FluidSynth one after another on one new synthesizer
    (as pretty_midi's ``fluidsynth`` does) and summed, unscaled; raises where it cannot
    render."""
    synth, sfid = _new_synth(sample_rate)
    try:
        waves = [i.fluidsynth(synthesizer=synth, sfid=sfid) for i in pm.instruments if i.notes]
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


def _parts(
    pm: pretty_midi.PrettyMIDI, lo: float, hi: float
) -> tuple[pretty_midi.PrettyMIDI, pretty_midi.PrettyMIDI]:
    """``pm`` as two: the notes starting outside [lo, hi) with every bend and controller
    change, and the notes inside with those inside, led by the bend and controller values in
    force at ``lo`` (a sustain pedal down, a volume) so that the new notes sound as they do
    in the whole. Each instrument is in both, perhaps empty."""
    outside, inside = pretty_midi.PrettyMIDI(), pretty_midi.PrettyMIDI()
    for inst in pm.instruments:
        old, new = (pretty_midi.Instrument(inst.program, inst.is_drum, inst.name) for _ in "ab")
        old.notes = [n for n in inst.notes if not lo <= n.start < hi]
        new.notes = [n for n in inst.notes if lo <= n.start < hi]
        old.pitch_bends, old.control_changes = inst.pitch_bends, inst.control_changes
        before = sorted((b for b in inst.pitch_bends if b.time < lo), key=lambda b: b.time)
        if before:  # the bend in force at lo
            new.pitch_bends.append(pretty_midi.PitchBend(before[-1].pitch, lo))
        new.pitch_bends += [b for b in inst.pitch_bends if lo <= b.time < hi]
        held: dict[int, int] = {}  # controller -> its value at lo
        for c in sorted(inst.control_changes, key=lambda c: c.time):
            if c.time < lo:
                held[c.number] = c.value
        new.control_changes = [pretty_midi.ControlChange(n, v, lo) for n, v in held.items()]
        new.control_changes += [c for c in inst.control_changes if lo <= c.time < hi]
        outside.instruments.append(old)
        inside.instruments.append(new)
    return outside, inside


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
    """Unscaled renders of music that takes share, kept by content (the last ``size``).

    The web demo renders a clip for its preview, and then every continuation of it, every
    variation and every new take, starts with the same notes: kept here, only the new bars
    are rendered again (`synthesize` with ``split``). Thread-safe."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._kept: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            wave = self._kept.get(key)
            if wave is not None:
                self._kept.move_to_end(key)
            return wave

    def put(self, key: tuple, wave: np.ndarray) -> None:
        wave.setflags(write=False)  # shared by every take that reuses it
        with self._lock:
            self._kept[key] = wave
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)


def _render(
    parts: list[pretty_midi.PrettyMIDI], sample_rate: int, backend: str, kept: Renders | None
) -> np.ndarray:
    """Each part rendered (the first from ``kept`` when there), then mixed."""
    waves = []
    for i, part in enumerate(parts):
        key = (backend, sample_rate, _content(part))
        wave = kept.get(key) if kept is not None and i == 0 else None
        if wave is None:
            wave = (_fluidsynth if backend == "fluidsynth" else _plain)(part, sample_rate)
            if kept is not None and i == 0:
                kept.put(key, wave)
        waves.append(wave)
    return waves[0] if len(waves) == 1 else _mixed(waves)


def synthesize(
    pm: pretty_midi.PrettyMIDI,
    sample_rate: int = SAMPLE_RATE,
    *,
    backend: str = "auto",
    split: float | tuple[float, float] | None = None,
    kept: Renders | None = None,
) -> tuple[np.ndarray, str]:
    """Render ``pm`` to mono float32 audio in [-1, 1]; returns (samples, backend used).

    ``backend``: "auto" (FluidSynth when available, else the plain synth), "fluidsynth" or
    "plain". With "auto" any failure of FluidSynth falls back to the plain synth (logged), so
    rendering never fails for want of a system library. The audio is as long as the music
    plus a short tail, and peaks at 0.9 (silence stays silent).

    ``split`` (seconds, or a span (start, end) of seconds): the notes from there on (inside
    the span) are new, the others the music it continues. The two are rendered apart and
    mixed, the others taken from ``kept`` when an earlier take rendered the same (a clip's
    preview, another variation): a continuation then renders only its new bars. Apart or
    together sound the same (pretty_midi renders each instrument apart too); the samples
    differ a little (FluidSynth's reverb and 64-sample blocks follow its running time).
    """
    if backend not in ("auto", "fluidsynth", "plain"):
        raise ConfigError(f"audio backend must be auto, fluidsynth or plain (got {backend!r})")
    if not 8000 <= sample_rate <= 96000:
        raise ConfigError(f"sample rate must be 8000-96000 Hz (got {sample_rate})")
    if backend == "fluidsynth" and not fluidsynth_available():
        raise ConfigError(
            "FluidSynth is not available: install pyfluidsynth and the system libfluidsynth "
            "(Debian: apt install libfluidsynth3), or use the plain synth"
        )
    parts = [pm]
    if split is not None:
        lo, hi = (split, math.inf) if not isinstance(split, tuple) else split
        parts = list(_parts(pm, lo, hi))
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
    split: float | tuple[float, float] | None = None,
    kept: Renders | None = None,
) -> str:
    """Render ``pm`` (see `synthesize`) and write it as a WAV file; returns the backend
    used."""
    samples, used = synthesize(pm, sample_rate, split=split, kept=kept)
    Path(path).write_bytes(wav_bytes(samples, sample_rate))
    return used
