"""musegen.tokens: the tokenizer (vocabulary, exact round trips) and the grammar."""

from __future__ import annotations

import io
import random
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
from conftest import note, real_midi_files, smf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from musegen.errors import ConfigError, MidiError, TokenError
from musegen.midi import Note, Score, Track, read_score
from musegen.tokens.grammar import Phase
from musegen.tokens.tokenizer import Tokenizer

TOK = Tokenizer()
CONFIGS = {
    "default": TOK,
    "velocity+tempo": Tokenizer(use_velocity=True, use_tempo=True),
    "12tpq-narrow": Tokenizer(12, use_tempo=True, pitch_range=(36, 96)),
    "top-first": Tokenizer(chord_order="top"),
}
# Real files musegen cannot tokenize, and why (every other real file must round-trip).
NOT_TOKENIZED = {
    "symusic_Issue104_Bizarre_Love_Triangle2.mid": "corrupt MIDI file",
    "miditok_empty.mid": "has no notes",
}
HYPOTHESIS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


def names(ids: list[int], tok: Tokenizer = TOK) -> list[str]:
    return [tok.id_to_token(i) for i in ids]


# -- vocabulary ----------------------------------------------------------------------------


def test_default_vocabulary_layout() -> None:
    assert TOK.vocab_size == len(TOK.vocab) == 460
    assert TOK.vocab[:4] == ["PAD", "BOS", "EOS", "BAR"]
    assert (TOK.pad_id, TOK.bos_id, TOK.eos_id, TOK.bar_id) == (0, 1, 2, 3)
    assert len(TOK.ids_of("TIMESIG")) == 16 and len(TOK.ids_of("TEMPO")) == 0
    assert len(TOK.ids_of("POS")) == 192  # 4/2 and 7/4 are 8 and 7 quarters
    assert len(TOK.ids_of("PITCH")) == 128 and len(TOK.ids_of("DUR")) == 120
    assert TOK.durations[:96] == list(range(1, 97))
    assert TOK.durations[96:] == [*range(102, 193, 6), *range(216, 385, 24)]
    for i, tok in enumerate(TOK.vocab):
        assert TOK.token_to_id(tok) == i and TOK.id_to_token(i) == tok
    assert TOK.pitch_of_id[TOK.token_to_id("PITCH_60")] == 60
    assert TOK.pitch_of_id[TOK.token_to_id("DUR_24")] == -1
    assert list(TOK.pitch_of_id[TOK.pitch_ids]) == list(range(128))
    assert TOK.pos_ids[5] == TOK.token_to_id("POS_5")
    assert TOK.family_of(TOK.token_to_id("TIMESIG_6/8")) == "TIMESIG"
    assert TOK.duration_of_id(TOK.token_to_id("DUR_216")) == 216
    with pytest.raises(TokenError):
        TOK.token_to_id("PITCH_200")
    with pytest.raises(TokenError):
        TOK.id_to_token(460)


def test_optional_families() -> None:
    tok = CONFIGS["velocity+tempo"]
    assert tok.vocab_size == 460 + 8 + 24
    assert "VEL_79" in tok.vocab and "TEMPO_120" in tok.vocab and "TEMPO_60" in tok.vocab
    narrow = CONFIGS["12tpq-narrow"]
    assert len(narrow.ids_of("PITCH")) == 61 and len(narrow.ids_of("POS")) == 96


@pytest.mark.parametrize(
    "kwargs", [{"ticks_per_quarter": 7}, {"pitch_range": (60, 50)}, {"chord_order": "middle"}]
)
def test_bad_settings_raise_config_error(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        Tokenizer(**kwargs)
    with pytest.raises(ConfigError):
        Tokenizer(time_signatures=[(3, 4)])  # no 4/4 fallback


def test_config_round_trip(tmp_path: Path) -> None:
    for tok in CONFIGS.values():
        assert Tokenizer.from_dict(tok.to_dict()) == tok
        tok.save(tmp_path / "tok.json")
        back = Tokenizer.load(tmp_path / "tok.json")
        assert back == tok and back.vocab == tok.vocab
    with pytest.raises(ConfigError, match="not a musegen tokenizer"):
        Tokenizer.from_dict({"ticks_per_quarter": 24})
    bad = TOK.to_dict() | {"vocab_size": 7}
    with pytest.raises(ConfigError, match="vocab_size"):
        Tokenizer.from_dict(bad)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Tokenizer.load(tmp_path / "bad.json")


def test_chord_order_puts_the_top_or_the_bass_first() -> None:
    chord = [Note(0, p, 480, 80, 0) for p in (48, 64, 60, 67)] + [Note(480, 72, 480, 80, 0)]
    score = Score(notes=sorted(chord), tracks=[Track()], time_signatures=[(0, 4, 4)])
    top = CONFIGS["top-first"]
    pitches = {
        name: [t for t in names(tok.encode_score(score), tok) if t.startswith("PITCH")]
        for name, tok in (("bass", TOK), ("top", top))
    }
    assert pitches["bass"] == ["PITCH_48", "PITCH_60", "PITCH_64", "PITCH_67", "PITCH_72"]
    assert pitches["top"] == ["PITCH_67", "PITCH_64", "PITCH_60", "PITCH_48", "PITCH_72"]
    assert top.decode_score(top.encode_score(score)) == TOK.decode_score(TOK.encode_score(score))
    # each grammar refuses the other order: a chord's tones only rise (bass) or fall (top)
    assert not top.grammar().accepts(TOK.encode_score(score))
    assert not TOK.grammar().accepts(top.encode_score(score))
    # configs from before the option read as bass-first, and the default writes no key
    assert "chord_order" not in TOK.to_dict()
    assert Tokenizer.from_dict(top.to_dict()).chord_order == "top"
    assert top.vocab == TOK.vocab and top != TOK


# -- the worked example of TOKENS.md (keep in sync) ----------------------------------------

WORKED_EXAMPLE = (
    "BOS BAR TIMESIG_3/4 POS_0 PITCH_62 DUR_24 POS_24 PITCH_67 DUR_18 POS_42 PITCH_69 DUR_6 "
    "POS_48 PITCH_71 DUR_24 BAR POS_0 PITCH_69 DUR_24 POS_24 PITCH_59 DUR_48 PITCH_67 DUR_48 EOS"
)


def test_worked_example() -> None:
    melody = Score(
        notes=[
            Note(0, 62, 24),  # D4 quarter
            Note(24, 67, 18),  # G4 dotted eighth
            Note(42, 69, 6),  # A4 sixteenth
            Note(48, 71, 24),  # B4 quarter
            Note(72, 69, 24),  # bar 2: A4 quarter
            Note(96, 59, 48),  # B3 half ...
            Note(96, 67, 48),  # ... under G4 half (a chord: one POS, pitches rising)
        ],
        time_signatures=[(0, 3, 4)],
    )
    ids = TOK.encode_score(melody)
    assert " ".join(names(ids)) == WORKED_EXAMPLE
    assert TOK.decode_score(ids) == melody


# -- exact round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("path", real_midi_files(), ids=[p.name for p in real_midi_files()])
def test_real_files_round_trip_or_raise(path: Path) -> None:
    if path.name in NOT_TOKENIZED:
        with pytest.raises(MidiError, match=NOT_TOKENIZED[path.name]):
            TOK.encode(path)
        return
    for tok in CONFIGS.values():
        ids = tok.encode(path)
        assert tok.grammar().accepts(ids, complete=True)
        score = read_score(path, ticks_per_quarter=tok.ticks_per_quarter)
        assert tok.decode_score(ids) == tok.quantize(score)


def test_most_real_files_round_trip() -> None:
    files = real_midi_files()
    assert len([f for f in files if f.name not in NOT_TOKENIZED]) >= 0.9 * len(files)


def test_folk_tunes_are_all_accepted(folk_midis: list[Path]) -> None:
    assert len(folk_midis) == 40
    for path in folk_midis:
        s = read_score(path)
        ids = TOK.encode(path)
        assert TOK.grammar().accepts(ids, complete=True), path.name
        q = TOK.quantize(s)
        assert TOK.decode_score(ids) == q
        # monophonic folk tunes lose nothing but the tracks' programs to the tokens
        assert [(n.start, n.pitch, n.duration) for n in q.notes] == [
            (n.start, n.pitch, n.duration) for n in s.notes
        ]


def test_every_source_type_gives_the_same_ids() -> None:
    path = next(p for p in real_midi_files() if p.name == "test09.mid")
    data = path.read_bytes()
    want = TOK.encode(path)
    assert TOK.encode(str(path)) == want
    assert TOK.encode(data) == want
    assert TOK.encode(mido.MidiFile(file=io.BytesIO(data))) == want
    pm = pretty_midi.PrettyMIDI(io.BytesIO(data))
    assert TOK.encode(pm) == TOK.encode_score(read_score(pm))
    assert TOK.encode(TOK.decode(want)) == want  # decode -> PrettyMIDI -> encode


def test_encode_needs_notes_but_an_empty_score_gives_the_metre() -> None:
    drums_only = smf([note(0, 36, 240, channel=9)])
    with pytest.raises(MidiError, match="only drum notes; choose the drum track"):
        TOK.encode(drums_only)
    assert names(TOK.encode(drums_only, track=0))[3:6] == ["POS_0", "PITCH_36", "DUR_12"]
    with pytest.raises(MidiError, match="no notes"):
        TOK.encode(smf([b""]))
    empty = Score(time_signatures=[(0, 6, 8)])
    assert names(TOK.encode_score(empty)) == ["BOS", "BAR", "TIMESIG_6/8", "EOS"]
    assert names(TOK.encode_score(empty, add_bos=False, add_eos=False)) == ["BAR", "TIMESIG_6/8"]


def test_quantize_rules() -> None:
    s = Score(
        notes=[
            Note(0, 60, 10, 50, 0),
            Note(0, 60, 30, 120, 1),  # same onset and pitch: the longest wins
            Note(3, 130 - 3, 1000, 90, 0),  # long: clips to 16 quarters
            Note(5, 64, 99, 90, 0),  # 99 -> 96 or 102: a tie goes to the longer
        ],
        tracks=[Track(40), Track(41)],
        time_signatures=[(0, 4, 4), (50, 3, 4), (100, 11, 8)],
        tempos=[(0, 100.0), (10, 250.0)],
    )
    q = TOK.quantize(s)
    assert q.notes == [Note(0, 60, 30), Note(3, 127, 384), Note(5, 64, 102)]
    assert q.tracks == [Track()] and q.tempos == [(0, 120.0)]
    assert q.time_signatures == [(0, 4, 4)]  # the changes fall after the last note's bar
    later = Score(notes=[*s.notes, Note(400, 60, 1)], time_signatures=s.time_signatures)
    # 3/4 written at tick 50 starts at the next bar line (96); 11/8 (no token, no supported
    # metre divides it) becomes 4/4 at the first 3/4 bar line after tick 100 (168)
    assert TOK.quantize(later).time_signatures == [(0, 4, 4), (96, 3, 4), (168, 4, 4)]
    vt = CONFIGS["velocity+tempo"].quantize(s)
    assert [n.velocity for n in vt.notes] == [127, 95, 95]
    assert vt.tempos == [(0, 101.0)]  # tempo per bar, taken at the bar line


@pytest.mark.parametrize(
    ("metre", "mapped"),
    [
        ((3, 4), (3, 4)),
        ((4, 8), (2, 4)),
        ((8, 8), (4, 4)),
        ((2, 1), (4, 2)),
        ((12, 16), (6, 8)),
        ((4, 1), (4, 2)),
        ((9, 4), (3, 4)),
        ((6, 2), (3, 2)),
        ((3, 1), (3, 2)),
        ((11, 8), (4, 4)),
        ((3, 64), (4, 4)),
    ],
)
def test_unsupported_metres_map_documented_way(metre: tuple, mapped: tuple) -> None:
    assert TOK.time_signatures[TOK.map_time_signature(*metre)] == mapped


# -- property tests ------------------------------------------------------------------------

METRES = [(4, 4), (3, 4), (2, 4), (6, 8), (9, 8), (5, 8), (2, 2), (4, 2), (1, 4), (7, 8), (11, 8)]


@st.composite
def scores(draw: st.DrawFn) -> Score:
    n = draw(st.integers(0, 40))
    onsets = draw(st.lists(st.integers(0, 800), min_size=n, max_size=n))
    chords = draw(st.lists(st.integers(1, 3), min_size=n, max_size=n))
    notes = []
    for onset, k in zip(onsets, chords, strict=True):
        for _ in range(k):
            notes.append(
                Note(
                    onset,
                    draw(st.integers(0, 127)),
                    draw(st.one_of(st.integers(1, 100), st.integers(1, 500))),
                    draw(st.integers(1, 127)),
                    draw(st.integers(0, 1)),
                )
            )
    ts = [(0, *draw(st.sampled_from(METRES)))]
    for tick in sorted(draw(st.lists(st.integers(1, 900), max_size=4))):
        ts.append((tick, *draw(st.sampled_from(METRES))))
    tempos = [(0, draw(st.floats(20, 400)))]
    tempos += [
        (t, draw(st.floats(20, 400)))
        for t in sorted(set(draw(st.lists(st.integers(1, 900), max_size=3))))
    ]
    return Score(notes=sorted(notes), tracks=[Track(), Track(5)], time_signatures=ts, tempos=tempos)


@HYPOTHESIS
@given(score=scores(), config=st.sampled_from(sorted(CONFIGS)))
def test_round_trip_is_exact_on_generated_scores(score: Score, config: str) -> None:
    tok = CONFIGS[config]
    ids = tok.encode_score(score)
    assert tok.grammar().accepts(ids, complete=True)
    q = tok.quantize(score)
    assert tok.decode_score(ids) == q
    assert tok.encode_score(q) == ids  # quantize is a fixed point
    assert tok.quantize(q) == q


@HYPOTHESIS
@given(seed=st.integers(0, 2**32 - 1), config=st.sampled_from(sorted(CONFIGS)))
def test_random_walks_through_allowed_decode(seed: int, config: str) -> None:
    tok = CONFIGS[config]
    g = tok.grammar()
    rng = np.random.default_rng(seed)
    state, ids = g.start(), []
    for _ in range(int(rng.integers(1, 150))):
        allowed = np.flatnonzero(g.allowed(state))
        assert len(allowed) > 0
        # favour EOS rarely so walks get long; favour POS/PITCH/DUR like real music
        t = int(rng.choice(allowed))
        state = g.advance(state, t)
        ids.append(t)
        if state.finished:
            break
    assert g.accepts(ids)
    assert g.walk(ids) == state
    s = tok.decode_score(ids)
    assert len(s.notes) == sum(tok.family_of(i) == "DUR" for i in ids)
    assert tok.decode_score(tok.encode_score(s)) == tok.quantize(s)


def test_allowed_and_advance_agree_everywhere() -> None:
    """The mask (cached, vectorized) and advance (scalar checks) are two implementations."""
    rng = random.Random(1)
    for tok in CONFIGS.values():
        g = tok.grammar()
        for _ in range(6):
            state = g.start()
            for _ in range(60):
                mask = g.allowed(state)
                for t in range(tok.vocab_size):
                    try:
                        g.advance(state, t)
                        ok = True
                    except TokenError:
                        ok = False
                    assert ok == mask[t], (state, tok.vocab[t])
                choices = np.flatnonzero(mask)
                state = g.advance(state, int(rng.choice(choices)))
                if state.finished:
                    break


# -- decoding leniency and errors ----------------------------------------------------------


def test_prefixes_pads_and_missing_bos_decode() -> None:
    ids = TOK.encode_score(read_score(next(p for p in real_midi_files() if p.name == "test14.mid")))
    full = TOK.decode_score(ids)
    for cut in range(len(ids) + 1):
        part = TOK.decode_score(ids[:cut])
        done = sum(TOK.family_of(i) == "DUR" for i in ids[:cut])
        assert part.notes == full.notes[:done]
    assert TOK.decode_score(ids[1:]) == full  # no BOS
    padded = [TOK.pad_id, *ids[:10], TOK.pad_id, *ids[10:], TOK.pad_id, TOK.pad_id]
    assert TOK.decode_score(padded) == full
    assert TOK.decode_score(np.array(ids)) == full
    assert TOK.decode_score([]) == Score()
    pm = TOK.decode(ids)
    assert isinstance(pm, pretty_midi.PrettyMIDI)
    assert sum(len(i.notes) for i in pm.instruments) == len(full.notes)


@pytest.mark.parametrize(
    "bad",
    [
        "BOS POS_0",  # no BAR
        "BOS BAR POS_0",  # the first bar needs TIMESIG
        "BOS BAR TIMESIG_4/4 POS_96",  # past the end of a 4/4 bar
        "BOS BAR TIMESIG_4/4 POS_5 PITCH_60 DUR_3 POS_5",  # POS must rise
        "BOS BAR TIMESIG_4/4 POS_5 PITCH_60 DUR_3 PITCH_60",  # pitches must rise in a chord
        "BOS BAR TIMESIG_4/4 POS_5 DUR_3",  # DUR without PITCH
        "BOS BAR TIMESIG_4/4 POS_5 PITCH_60 PITCH_62",  # PITCH without DUR
        "BOS BAR TIMESIG_4/4 BAR TIMESIG_4/4",  # the same metre again
        "BOS BAR TIMESIG_4/4 TIMESIG_3/4",  # two metres
        "BOS BAR TIMESIG_4/4 EOS BAR",  # after EOS only PAD
        "BOS BOS",
    ],
)
def test_ungrammatical_sequences_raise_token_error(bad: str) -> None:
    ids = [TOK.token_to_id(t) for t in bad.split()]
    assert not TOK.grammar().accepts(ids)
    with pytest.raises(TokenError, match="cannot decode: at index"):
        TOK.decode_score(ids)


def test_unknown_and_malformed_ids_raise_token_error() -> None:
    with pytest.raises(TokenError, match="unknown token id 999"):
        TOK.decode_score([1, 999])
    with pytest.raises(TokenError, match="unknown token id -1"):
        TOK.decode_score([1, -1])
    with pytest.raises(TokenError, match="1-D"):
        TOK.decode_score([[1, 3]])
    with pytest.raises(TokenError, match="integers"):
        TOK.decode_score(["BOS"])


def test_grammar_state_tracks_what_a_sampler_needs() -> None:
    g = TOK.grammar()
    ids = [TOK.token_to_id(t) for t in WORKED_EXAMPLE.split()[:-1]]
    s = g.walk(ids)
    assert (s.phase, s.bars, s.bar_start, s.bar_ticks) == (Phase.DUR, 2, 72, 72)
    assert (s.position, s.pitch, s.tick, s.finished) == (24, 67, 96, False)
    assert g.advance(s, TOK.eos_id).finished
    assert g.allowed(s)[TOK.token_to_id("PITCH_68")]
    assert not g.allowed(s)[TOK.token_to_id("PITCH_67")]
    assert not g.allowed(s)[TOK.token_to_id("POS_72")]  # a 3/4 bar has 72 ticks
    batch = g.allowed_batch([g.start(), s])
    assert batch.shape == (2, TOK.vocab_size) and batch[0].sum() == 1
    m = g.allowed(s)
    m[:] = False  # callers get their own copy
    assert g.allowed(s).any()
    first = g.walk([TOK.bos_id, TOK.bar_id])
    assert set(np.flatnonzero(g.allowed(first))) == set(TOK.timesig_ids)
