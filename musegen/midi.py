"""Read any MIDI source into a `Score` on a beat grid, and write a `Score` back.

(Contract only: the reader/writer are being written. Keep these dataclasses' fields.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_TICKS_PER_QUARTER = 24


@dataclass(frozen=True, order=True)
class Note:
    """One note on the grid. Times are in grid ticks (``Score.ticks_per_quarter`` per beat)."""

    start: int  # onset, grid ticks from the start of the piece, >= 0
    pitch: int  # 0..127
    duration: int  # grid ticks, >= 1
    velocity: int = 90  # 1..127
    track: int = 0  # index into Score.tracks


@dataclass(frozen=True)
class Track:
    program: int = 0  # General MIDI program 0..127
    is_drum: bool = False
    name: str = ""


@dataclass
class Score:
    """A piece on a beat grid: notes sorted by (start, pitch), time signatures and tempi."""

    ticks_per_quarter: int = DEFAULT_TICKS_PER_QUARTER
    notes: list[Note] = field(default_factory=list)
    tracks: list[Track] = field(default_factory=lambda: [Track()])
    # (tick, numerator, denominator), sorted, the first at tick 0
    time_signatures: list[tuple[int, int, int]] = field(default_factory=lambda: [(0, 4, 4)])
    # (tick, quarter notes per minute), sorted, the first at tick 0
    tempos: list[tuple[int, float]] = field(default_factory=lambda: [(0, 120.0)])
