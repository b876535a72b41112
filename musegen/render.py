"""Hear and see a melody: audio (WAV) and piano-roll pictures (PNG).

Audio uses FluidSynth with the General MIDI soundfont that ships in the pretty_midi wheel
(TimGM6mb.sf2) when pyfluidsynth and the system libfluidsynth are installed, and otherwise
pretty_midi's own additive synth (no extra dependency). Pictures need matplotlib (the
``demo`` or ``train`` extra).
"""

from __future__ import annotations

import io
import logging
import math
import threading
import wave
from pathlib import Path

import numpy as np
import pretty_midi

from musegen.errors import ConfigError

SAMPLE_RATE = 22050
PRIMER_COLOUR = "#7f8c9a"  # grey-blue: what the user gave
CONTINUATION_COLOUR = "#e4572e"  # orange: what the model wrote
TAIL_SECONDS = 1.0  # let the last note ring out
BLACK_KEYS = {1, 3, 6, 8, 10}  # pitch classes shaded in the piano roll
MAX_BAR_LABELS = 24  # more bars than this: number every 2nd, 3rd, ...
MAX_PITCH_LABELS = 22  # more white keys than this: name only the Cs

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


def _fluidsynth(pm: pretty_midi.PrettyMIDI, sample_rate: int) -> np.ndarray:
    """FluidSynth rendering with the bundled soundfont (raises where it cannot render)."""
    return pm.fluidsynth(fs=sample_rate, synthesizer=str(soundfont_path()))


def _plain(pm: pretty_midi.PrettyMIDI, sample_rate: int) -> np.ndarray:
    """pretty_midi's additive synth; silence (not NaN) for music without pitched notes."""
    if not any(inst.notes and not inst.is_drum for inst in pm.instruments):
        return np.zeros(0, dtype=np.float32)
    return pm.synthesize(fs=sample_rate)


def synthesize(
    pm: pretty_midi.PrettyMIDI, sample_rate: int = SAMPLE_RATE, *, backend: str = "auto"
) -> tuple[np.ndarray, str]:
    """Render ``pm`` to mono float32 audio in [-1, 1]; returns (samples, backend used).

    ``backend``: "auto" (FluidSynth when available, else the plain synth), "fluidsynth" or
    "plain". With "auto" any failure of FluidSynth falls back to the plain synth (logged), so
    rendering never fails for want of a system library. The audio is as long as the music
    plus a short tail, and peaks at 0.9 (silence stays silent).
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
    audio, used = None, "plain"
    if backend != "plain" and fluidsynth_available():
        try:
            audio, used = _fluidsynth(pm, sample_rate), "fluidsynth"
        except Exception as e:
            if backend == "fluidsynth":
                raise ConfigError(f"FluidSynth could not render this music: {e}") from e
            log.warning("FluidSynth failed (%s: %s); using the plain synth", type(e).__name__, e)
    if audio is None:
        audio = _plain(pm, sample_rate)
    length = int((pm.get_end_time() + TAIL_SECONDS) * sample_rate)
    out = np.zeros(length, dtype=np.float32)
    n = min(length, len(audio))
    out[:n] = np.nan_to_num(audio[:n])
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


def write_wav(pm: pretty_midi.PrettyMIDI, path: str | Path, sample_rate: int = SAMPLE_RATE) -> str:
    """Render ``pm`` and write it as a WAV file; returns the backend used."""
    samples, used = synthesize(pm, sample_rate)
    Path(path).write_bytes(wav_bytes(samples, sample_rate))
    return used


def piano_roll(
    pm: pretty_midi.PrettyMIDI,
    path: str | Path,
    *,
    split: float | tuple[float, float] | None = None,
    title: str | None = None,
) -> None:
    """Draw ``pm`` as a piano roll PNG, read as in a DAW: the time axis in bars (numbered from
    1, bar lines across, beats marked under the axis), the pitch axis with note names and
    shaded black-key rows. Notes starting at or after ``split`` seconds are the continuation
    (orange), earlier ones the primer (grey-blue); with ``split=(start, end)``, the notes of
    that span are the new ones (regenerated bars) and the span is shaded."""
    fig = new_figure((10, 3.2))
    ax = fig.subplots()
    notes = [n for inst in pm.instruments if not inst.is_drum for n in inst.notes]
    low = min((n.pitch for n in notes), default=60) - 2
    high = max((n.pitch for n in notes), default=72) + 2
    for p in range(low, high + 1):
        if p % 12 in BLACK_KEYS:
            ax.axhspan(p - 0.5, p + 0.5, color="#f2f2f2", lw=0, zorder=0)
    # the output's notes are timed on a finer grid than ``split``: allow a small tolerance
    lo, hi = (split, math.inf) if not isinstance(split, tuple) else split
    new = [split is not None and lo - 1e-4 <= n.start < hi - 1e-4 for n in notes]
    for colour, part in (
        (PRIMER_COLOUR, [n for n, is_new in zip(notes, new, strict=True) if not is_new]),
        (CONTINUATION_COLOUR, [n for n, is_new in zip(notes, new, strict=True) if is_new]),
    ):
        # one broken_barh per pitch: a few artists, however many notes
        by_pitch: dict[int, list[tuple[float, float]]] = {}
        for n in part:
            by_pitch.setdefault(n.pitch, []).append((n.start, n.end - n.start))
        for pitch, spans in by_pitch.items():
            ax.broken_barh(spans, (pitch - 0.4, 0.8), color=colour, lw=0, zorder=2)
    end = max(pm.get_end_time(), 1.0)
    downbeats = [float(t) for t in pm.get_downbeats() if t <= end + 1e-6]
    # Bar lines, and beats as short marks under the axis where minor ticks would be: one
    # collection each (as ticks, a long clip's hundreds of beats took most of the drawing).
    at_x = ax.get_xaxis_transform()  # x in seconds, y in axes fractions
    ax.vlines(downbeats, 0, 1, transform=at_x, colors="#bbbbbb", lw=0.6, zorder=1)
    bars = set(downbeats)
    beats = [float(t) for t in pm.get_beats() if t <= end + 1e-6 and float(t) not in bars]
    ax.vlines(beats, -0.012, 0, transform=at_x, colors="black", lw=0.6, clip_on=False, gid="beats")
    if isinstance(split, tuple):
        ax.axvspan(lo, hi, color=CONTINUATION_COLOUR, alpha=0.12, lw=0, zorder=0)
    if split is not None:
        for t in (lo, hi) if isinstance(split, tuple) else (lo,):
            ax.axvline(t, color=CONTINUATION_COLOUR, lw=1.2, ls="--", zorder=3)
    ax.set_xlim(0, end)
    ax.set_ylim(low - 0.5, high + 0.5)
    every = max(1, math.ceil(len(downbeats) / MAX_BAR_LABELS))
    shown = list(range(0, len(downbeats), every))
    ax.set_xticks([downbeats[i] for i in shown], [str(i + 1) for i in shown])
    ax.set_xlabel("bar")
    names = [p for p in range(low, high + 1) if p % 12 not in BLACK_KEYS]
    if len(names) > MAX_PITCH_LABELS:  # a wide range: name the Cs only
        names = [p for p in names if p % 12 == 0] or [low]
    ax.set_yticks(names, [pretty_midi.note_number_to_name(p) for p in names], fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)
    # fixed margins that fit these labels (note names, bar numbers, a title): measuring them
    # (tight_layout) took a sixth of the drawing
    fig.subplots_adjust(left=0.045, right=0.99, bottom=0.15, top=0.9 if title else 0.97)
    fig.savefig(path, format="png")


def new_figure(size: tuple[float, float], dpi: int = 100):
    """A matplotlib Figure not tied to pyplot: safe in server threads, leaves the user's
    backend alone, freed when it goes out of scope."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ConfigError("pictures need matplotlib: pip install 'musegen[demo]'") from e
    return Figure(figsize=size, dpi=dpi)
