"""Hear and see a melody: audio (WAV) and piano-roll pictures (PNG).

Audio uses FluidSynth with the General MIDI soundfont that ships in the pretty_midi wheel
(TimGM6mb.sf2) when pyfluidsynth and the system libfluidsynth are installed, and otherwise
pretty_midi's own additive synth (no extra dependency). Pictures need matplotlib (the
``demo`` or ``train`` extra).
"""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pretty_midi

from musegen.errors import ConfigError

SAMPLE_RATE = 22050
PRIMER_COLOUR = "#7f8c9a"  # grey-blue: what the user gave
CONTINUATION_COLOUR = "#e4572e"  # orange: what the model wrote
TAIL_SECONDS = 1.0  # let the last note ring out


def soundfont_path() -> Path | None:
    """The General MIDI soundfont bundled with pretty_midi, if present."""
    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    return path if path.is_file() else None


def _fluidsynth(pm: pretty_midi.PrettyMIDI, sample_rate: int) -> np.ndarray | None:
    """FluidSynth rendering, or None where FluidSynth or the soundfont is missing."""
    sf2 = soundfont_path()
    if sf2 is None:
        return None
    try:
        import fluidsynth  # noqa: F401  (pyfluidsynth; raises ImportError without libfluidsynth)
    except (ImportError, OSError):
        return None
    return pm.fluidsynth(fs=sample_rate, synthesizer=str(sf2))


def synthesize(
    pm: pretty_midi.PrettyMIDI, sample_rate: int = SAMPLE_RATE, *, backend: str = "auto"
) -> tuple[np.ndarray, str]:
    """Render ``pm`` to mono float32 audio in [-1, 1]; returns (samples, backend used).

    ``backend``: "auto" (FluidSynth when available, else the plain synth), "fluidsynth" or
    "plain". The audio is as long as the music plus a short tail, and peaks at 0.9.
    """
    if backend not in ("auto", "fluidsynth", "plain"):
        raise ConfigError(f"audio backend must be auto, fluidsynth or plain (got {backend!r})")
    if not 8000 <= sample_rate <= 96000:
        raise ConfigError(f"sample rate must be 8000-96000 Hz (got {sample_rate})")
    audio, used = None, "fluidsynth"
    if backend != "plain":
        audio = _fluidsynth(pm, sample_rate)
        if audio is None and backend == "fluidsynth":
            raise ConfigError(
                "FluidSynth is not available: install pyfluidsynth and the system libfluidsynth "
                "(Debian: apt install libfluidsynth3), or use the plain synth"
            )
    if audio is None:
        audio, used = pm.synthesize(fs=sample_rate), "plain"
    length = int((pm.get_end_time() + TAIL_SECONDS) * sample_rate)
    out = np.zeros(length, dtype=np.float32)
    n = min(length, len(audio))
    out[:n] = audio[:n]
    peak = float(np.abs(out).max())
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
    split: float | None = None,
    title: str | None = None,
) -> None:
    """Draw ``pm`` as a piano roll PNG: notes starting at or after ``split`` seconds are the
    continuation (orange), earlier ones the primer (grey-blue); thin lines mark the bars."""
    fig = new_figure((10, 3.2))
    ax = fig.subplots()
    notes = [n for inst in pm.instruments if not inst.is_drum for n in inst.notes]
    # the output's notes are timed on a finer grid than ``split``: allow a small tolerance
    new = [split is not None and n.start >= split - 1e-4 for n in notes]
    for colour, part in (
        (PRIMER_COLOUR, [n for n, is_new in zip(notes, new, strict=True) if not is_new]),
        (CONTINUATION_COLOUR, [n for n, is_new in zip(notes, new, strict=True) if is_new]),
    ):
        # one broken_barh per pitch: a few artists, however many notes
        by_pitch: dict[int, list[tuple[float, float]]] = {}
        for n in part:
            by_pitch.setdefault(n.pitch, []).append((n.start, n.end - n.start))
        for pitch, spans in by_pitch.items():
            ax.broken_barh(spans, (pitch - 0.4, 0.8), color=colour, lw=0)
    for t in pm.get_downbeats():
        ax.axvline(t, color="#cccccc", lw=0.6, zorder=0)
    if split is not None:
        ax.axvline(split, color=CONTINUATION_COLOUR, lw=1.2, ls="--", zorder=0)
    low = min((n.pitch for n in notes), default=60) - 2
    high = max((n.pitch for n in notes), default=72) + 2
    ax.set_xlim(0, max(pm.get_end_time(), 1.0))
    ax.set_ylim(low, high)
    ticks = [p for p in range(low, high + 1) if p % 12 == 0] or [low]
    ax.set_yticks(ticks, [pretty_midi.note_number_to_name(p) for p in ticks])
    ax.set_xlabel("seconds")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png")


def new_figure(size: tuple[float, float], dpi: int = 100):
    """A matplotlib Figure not tied to pyplot: safe in server threads, leaves the user's
    backend alone, freed when it goes out of scope."""
    try:
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ConfigError("pictures need matplotlib: pip install 'musegen[demo]'") from e
    return Figure(figsize=size, dpi=dpi)
