"""Played-in MIDI: find the grid a performance was played to, and snap its notes there.

A clip played in on a keyboard has onsets a few milliseconds off the beat grid. Read as it is,
each onset lands on an odd tick of the model's grid (24 per quarter), a rhythm the model has
rarely seen. ``quantize(score, "auto")`` does what a DAW's quantize does, for the model's eyes
only (the user's own notes come back unchanged in the output):

1. a clip whose onsets all lie on the model's grid is left as it is;
2. otherwise each candidate grid (straight, triplet and swung subdivisions of the beat) is
   scored by how well it explains the onsets, and the best one is used: the cost of a grid is
   the code length of the onsets under it, ``log(rms error) + log(positions per beat)`` per
   note (a finer grid always fits better, but each onset then costs more to say), so the
   coarsest grid that explains the playing wins, and exact grids beat finer ones;
3. onsets move to the nearest point of that grid, note ends to the nearest grid point after
   the new onset.

Grid positions are in model ticks (24 per quarter note), so every grid is exact on the
model's grid. Bar and beat positions count from the clip's start (time 0), as in a DAW.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from musegen.errors import ConfigError
from musegen.midi import Limits, Score, read_score, rescale

FINE_TICKS_PER_QUARTER = 960  # the user's notes are read at this resolution
TICKS_PER_QUARTER = 24  # the positions below are in these ticks (the model's grid)
# "auto" reads a clip as played in when more than this share of its onsets is off the model's
# grid: written music has none (or a few grace notes and tuplets the grid lacks, which the
# reader rounds), a performance nearly all (1 in 10 jittered onsets lands on the grid by luck).
PLAYED_IN_SHARE = 0.25
# How far off the grid (in model ticks) an onset may be and still count as on it: writers such
# as abc2midi put every onset a source tick late (1/20 of a model tick at 480 per quarter).
ON_GRID_TOLERANCE = 0.1
# The onset error a perfectly quantized clip is credited with (quarter notes): keeps the
# cost finite and lets the coarsest exact grid win.
ERROR_FLOOR = 0.005


@dataclass(frozen=True)
class Grid:
    """Where onsets may fall inside one quarter note, in ticks of `TICKS_PER_QUARTER`."""

    name: str
    positions: tuple[int, ...]

    def points(self, end_quarters: float) -> np.ndarray:
        """Every grid point from 0 to past ``end_quarters``, in quarter notes (ascending)."""
        beats = np.arange(int(np.ceil(end_quarters)) + 2)[:, None]  # (Q, 1)
        return (beats + np.array(self.positions)[None, :] / TICKS_PER_QUARTER).ravel()


# Coarse to fine: on equal cost the coarser grid wins.
GRIDS: tuple[Grid, ...] = (
    Grid("1/4", (0,)),
    Grid("1/8", (0, 12)),
    Grid("1/8 swing", (0, 16)),
    Grid("1/8T", (0, 8, 16)),
    Grid("1/16", (0, 6, 12, 18)),
    Grid("1/16T", (0, 4, 8, 12, 16, 20)),
    Grid("1/32", (0, 3, 6, 9, 12, 15, 18, 21)),
)
MODES = ("auto", "off", *(g.name for g in GRIDS))


def parse_mode(mode: str) -> Grid | str:
    """``"auto"``, ``"off"`` or a `Grid` by name (case and spaces do not matter)."""
    text = " ".join(str(mode).lower().split())
    if text in ("auto", "off"):
        return text
    for g in GRIDS:
        if g.name.lower() == text:
            return g
    raise ConfigError(f"quantize must be one of {', '.join(MODES)} (got {mode!r})")


def _residuals(grid: Grid, onsets: np.ndarray) -> np.ndarray:
    """Distance of each onset (quarter notes) to the nearest point of ``grid``."""
    frac = onsets - np.floor(onsets)  # (N,) inside the beat
    points = np.array([*grid.positions, TICKS_PER_QUARTER]) / TICKS_PER_QUARTER  # 1.0 = next beat
    return np.abs(frac[:, None] - points[None, :]).min(axis=1)


def grid_cost(grid: Grid, onsets: np.ndarray) -> float:
    """Code length per onset (nats) of ``onsets`` (quarter notes) under ``grid``."""
    rms2 = float(np.mean(_residuals(grid, onsets) ** 2)) + ERROR_FLOOR**2
    return 0.5 * np.log(rms2) + np.log(len(grid.positions))


def detect_grid(onsets: np.ndarray) -> Grid:
    """The grid that best explains ``onsets`` (quarter notes from the clip's start)."""
    costs = [grid_cost(g, np.asarray(onsets, dtype=np.float64)) for g in GRIDS]
    return GRIDS[int(np.argmin(costs))]  # argmin keeps the first (coarsest) of equals


def off_grid_share(score: Score) -> float:
    """The share of onsets off the model's grid (24 ticks per quarter) by more than
    `ON_GRID_TOLERANCE` of a tick: 0 for written music, most onsets for played-in music."""
    ticks = np.array([n.start for n in score.notes]) * TICKS_PER_QUARTER / score.ticks_per_quarter
    return float(np.mean(np.abs(ticks - np.round(ticks)) > ON_GRID_TOLERANCE))


def _nearest(points: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the point nearest to each ``x`` (ascending ``points``; O(N log P), no N x P
    matrix: a long file has hundreds of thousands of both)."""
    right = np.clip(np.searchsorted(points, x), 1, len(points) - 1)  # (N,)
    left = right - 1
    return np.where(x - points[left] <= points[right] - x, left, right)


def snapped_onsets(score: Score, grid: Grid) -> np.ndarray:
    """The onsets of ``score``'s notes, in its ticks and in its note order, as `snap` moves them."""
    tpq = score.ticks_per_quarter
    starts = np.array([n.start for n in score.notes]) / tpq  # (N,) quarter notes
    if not len(starts):
        return np.zeros(0, dtype=np.int64)
    points = grid.points(max(n.end for n in score.notes) / tpq)  # (P,)
    return np.round(points[_nearest(points, starts)] * tpq).astype(np.int64)


def snap(score: Score, grid: Grid) -> Score:
    """``score`` with onsets on the nearest point of ``grid`` and ends on the nearest grid
    point after the new onset (so every note keeps at least one grid step)."""
    tpq = score.ticks_per_quarter
    if not score.notes:
        return score
    end = max(n.end for n in score.notes) / tpq
    points = grid.points(end)  # (P,) quarter notes
    ticks = np.round(points * tpq).astype(np.int64)  # (P,) exact: tpq is a multiple of 24
    starts = np.array([n.start for n in score.notes]) / tpq
    ends = np.array([n.end for n in score.notes]) / tpq
    at = _nearest(points, starts)  # (N,) index of the nearest point
    stop = _nearest(points, ends)
    stop = np.maximum(stop, at + 1)  # at least one grid step
    notes = [
        replace(n, start=int(ticks[a]), duration=int(ticks[b] - ticks[a]))
        for n, a, b in zip(score.notes, at, stop, strict=True)
    ]
    return replace(score, notes=sorted(notes))


def quantize(score: Score, mode: str = "auto") -> tuple[Score, Grid | None]:
    """Snap a played-in score for the model; returns the score and the grid used (None: left
    as it is). ``mode``: ``"auto"`` (a clip with more than `PLAYED_IN_SHARE` of its onsets
    off the model's grid is snapped to the grid detected; others are left alone), ``"off"``, or a
    grid name from `MODES` such as ``"1/16"`` or ``"1/8T"``."""
    choice = parse_mode(mode)
    if choice == "off" or not score.notes:
        return score, None
    if score.ticks_per_quarter % TICKS_PER_QUARTER:
        raise ConfigError(
            f"quantize needs a score read at a multiple of {TICKS_PER_QUARTER} ticks per "
            f"quarter (got {score.ticks_per_quarter})"
        )
    if isinstance(choice, Grid):
        return snap(score, choice), choice
    if off_grid_share(score) <= PLAYED_IN_SHARE:
        return score, None
    grid = detect_grid(np.array([n.start for n in score.notes]) / score.ticks_per_quarter)
    return snap(score, grid), grid


def read_for_model(
    source: Any,
    track: int | None,
    limits: Limits | None,
    mode: str,
    ticks_per_quarter: int = TICKS_PER_QUARTER,
) -> tuple[Score, Score, Grid | None]:
    """Read a source for generation: the user's notes (a `Score` at 960 ticks per quarter,
    what goes back into the output), what the model reads (at the model's
    ``ticks_per_quarter``: the snapped notes where quantized, else the source read on that
    grid), and the grid used
    (None: none). ``source`` must be readable twice (bytes, a path, a PrettyMIDI...)."""
    fine = read_score(source, track=track, ticks_per_quarter=FINE_TICKS_PER_QUARTER, limits=limits)
    snapped, used = quantize(fine, mode)
    if used is None:
        grid = read_score(source, track=track, ticks_per_quarter=ticks_per_quarter, limits=limits)
        return fine, grid, None
    return fine, rescale(snapped, ticks_per_quarter), used
