"""The web demo's waits, server side: an upload's preview, the first Continue after it, then
Regenerate bars.

    python -m musegen.bench_demo --primer data/folk/midi/test/essenFolksong_boehme10_30.mid

Each round uploads the clip as new (the model forgets what it read, the studio the audio it
rendered), renders its preview (as the page does on upload, reading the clip into the model
meanwhile), waits as a musician reaching for the button would, and presses Continue
(generate, write the MIDI, render the new bars' audio, draw the piano roll). It then presses
Regenerate bars (``--regenerate``, default 2-5) with one candidate and with the default number
(`musegen.options.INFILL_CANDIDATES`), in turns, each reading the bars around the gap afresh.
Prints the medians and ranges, and how much of a Continue was generating. Needs the ``demo``
extra (and FluidSynth for the audio it times).
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from musegen.app import Studio
from musegen.checkpoint import examples_dir
from musegen.cli import bar_range
from musegen.errors import ConfigError
from musegen.io.audio import Renders
from musegen.options import DEFAULT_MODEL, INFILL_CANDIDATES


def presses(
    studio: Studio,
    primer: str,
    model: str,
    bars: int,
    rounds: int,
    pause: float,
    regenerate: tuple[int, int] | None = (2, 5),
) -> dict[str, list[float]]:
    """ms per round: the upload's preview, the Continue press and the generating in it, and
    the Regenerate press for bars ``regenerate`` (none: not pressed) with 1 and
    `INFILL_CANDIDATES` candidates. Those bars must have a bar after them in the clip (else
    there is nothing to rank and every press takes one candidate): a `ConfigError` says so
    before anything is timed."""
    if regenerate:
        m = studio.model(model)
        if not m.plan_infill(m.prepare(primer), *regenerate).after:
            raise ConfigError(
                f"bars {regenerate[0]}-{regenerate[1]} end the clip: regenerate bars with a bar "
                "after them, so the candidates are ranked"
            )
    for seed in range(2):  # load the model, warm the renderers
        studio.continue_midi(primer, model=model, bars=bars, seed=seed)
    out: dict[str, list[float]] = {"upload": [], "continue": [], "generating": []}
    ks = sorted({1, INFILL_CANDIDATES}) if regenerate else []
    label = {k: f"regenerate, {k} candidate{'s' * (k > 1)}" for k in ks}
    out |= {label[k]: [] for k in ks}
    for seed in range(rounds):
        forget = getattr(studio.model(model).runtime, "forget", None)
        if forget is not None:  # the clip is new to the model each round
            forget()
        studio.renders = Renders()  # and its audio new to the studio
        t0 = time.perf_counter()
        studio.preview(primer, None, model)
        out["upload"].append(1e3 * (time.perf_counter() - t0))
        time.sleep(pause)
        t0 = time.perf_counter()
        _, summary = studio.continue_midi(primer, model=model, bars=bars, seed=seed)
        out["continue"].append(1e3 * (time.perf_counter() - t0))
        out["generating"].append(float(re.search(r" in (\d+) ms", summary).group(1)))
        for k in ks if seed % 2 else ks[::-1]:  # neither press always goes first
            if forget is not None:  # each press reads the bars around the gap afresh
                forget()
            t0 = time.perf_counter()
            studio.infill(primer, *regenerate, model=model, seed=seed, candidates=k)
            out[label[k]].append(1e3 * (time.perf_counter() - t0))
    return out


def _span(text: str) -> tuple[int, int] | None:
    """``--regenerate``: bars as the CLI reads them (`musegen.cli.bar_range`), or "none"."""
    return None if text == "none" else bar_range(text)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--primer", help="MIDI clip (default: the demo's first example)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--bars", type=int, default=8)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--pause", type=float, default=0.5, help="seconds between upload and press")
    p.add_argument(
        "--regenerate",
        type=_span,
        default=(2, 5),
        help="bars the Regenerate press rewrites, FIRST-LAST, with a bar after them (default: "
        "2-5; none: not pressed)",
    )
    args = p.parse_args(argv)
    primer = args.primer or str(sorted(examples_dir().glob("*.mid"))[0])
    with tempfile.TemporaryDirectory() as scratch:
        studio = Studio(Path(scratch))
        try:
            times = presses(
                studio, primer, args.model, args.bars, args.rounds, args.pause, args.regenerate
            )
        except ConfigError as e:
            p.error(str(e))
        finally:
            studio.close()
    print(f"demo, server side: {args.model}, {args.bars} bars after {primer}")
    for what, ms in times.items():
        print(f"  {what:25s} {statistics.median(ms):5.0f} ms ({min(ms):.0f}-{max(ms):.0f})")


if __name__ == "__main__":
    main()
