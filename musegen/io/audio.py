"""Hear a melody: audio samples and WAV files.

FluidSynth renders with the General MIDI soundfont that ships in the pretty_midi wheel
(TimGM6mb.sf2) when pyfluidsynth and the system libfluidsynth are installed; otherwise
pretty_midi's own additive synth does (no extra dependency). Pictures are
`musegen.io.pianoroll`'s.
"""

from __future__ import annotations

import io
import logging
import threading
import wave
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
