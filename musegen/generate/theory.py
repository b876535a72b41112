"""Keys and scales: parse a key name, detect the key of some notes, list its pitch classes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from musegen.errors import ConfigError

NOTE_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_LETTER = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# Intervals of each mode above its tonic. Minor means natural minor plus the raised 7th
# (harmonic minor's leading tone), as folk and classical minor melodies use both.
MODES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "pentatonic": (0, 2, 4, 7, 9),
    "chromatic": tuple(range(12)),
}
# Krumhansl-Kessler key profiles (probe-tone ratings), tonic first.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0..11
    mode: str  # a name in MODES

    @property
    def pitch_classes(self) -> frozenset[int]:
        return frozenset((self.tonic + i) % 12 for i in MODES[self.mode])

    def __str__(self) -> str:
        return f"{NOTE_NAMES[self.tonic]} {self.mode}"


def parse_key(text: str) -> Key:
    """Parse names like "D major", "F# minor", "Bb dorian", "Am", "C"."""
    words = text.strip().replace("-", " ").split()
    if not words:
        raise ConfigError("empty key name; use e.g. 'D major', 'A minor' or 'auto'")
    name, mode = words[0], " ".join(words[1:]).lower() or "major"
    if len(words) == 1 and len(name) > 1 and name.endswith("m") and name[:-1] != "":
        name, mode = name[:-1], "minor"
    letter = name[:1].upper()
    if letter not in _LETTER:
        raise ConfigError(f"unknown key {text!r}: the tonic must be A-G, e.g. 'D major'")
    pc = _LETTER[letter]
    for accidental in name[1:]:
        if accidental in "#♯":
            pc += 1
        elif accidental in "b♭":
            pc -= 1
        else:
            raise ConfigError(f"unknown key {text!r}: accidentals are # or b, e.g. 'F# minor'")
    mode = {"maj": "major", "min": "minor", "m": "minor"}.get(mode, mode)
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r} in {text!r}; choose {', '.join(MODES)}")
    return Key(pc % 12, mode)


def detect_key(notes: Iterable[tuple[int, int]]) -> Key:
    """Krumhansl-Schmuckler: the major or minor key whose profile best correlates with the
    duration-weighted pitch-class histogram of ``(pitch, duration)`` pairs."""
    hist = np.zeros(12)
    for pitch, duration in notes:
        hist[pitch % 12] += max(duration, 1)
    if np.count_nonzero(hist) < 2:  # nothing to correlate: the one pitch class is the tonic
        return Key(int(np.argmax(hist)), "major")
    best, best_r = Key(0, "major"), -2.0
    for mode, profile in (("major", _MAJOR_PROFILE), ("minor", _MINOR_PROFILE)):
        for tonic in range(12):
            r = float(np.corrcoef(hist, np.roll(profile, tonic))[0, 1])
            if r > best_r:
                best, best_r = Key(tonic, mode), r
    return best
