"""Ways to damage a Standard MIDI File, shared by the fuzz test and the fuzz script.

Each mutation takes the file's bytes and a ``random.Random`` and returns new bytes. They aim at
what a hostile or broken file does to a parser: truncation, bit flips, absurd chunk lengths and
track counts, huge delta times, endless running status, meta events of absurd length.
"""

from __future__ import annotations

import random
import struct


def _track_starts(data: bytes) -> list[int]:
    """Offsets of the 'MTrk' tags."""
    out, i = [], data.find(b"MTrk")
    while i >= 0:
        out.append(i)
        i = data.find(b"MTrk", i + 4)
    return out


def truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def bit_flips(data: bytes, rng: random.Random) -> bytes:
    d = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        i = rng.randrange(len(d))
        d[i] ^= 1 << rng.randrange(8)
    return bytes(d)


def random_bytes(data: bytes, rng: random.Random) -> bytes:
    d = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        d[rng.randrange(len(d))] = rng.randrange(256)
    return bytes(d)


def absurd_chunk_length(data: bytes, rng: random.Random) -> bytes:
    starts = _track_starts(data)
    if not starts:
        return data
    i = rng.choice(starts) + 4
    length = rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(2**32)])
    return data[:i] + struct.pack(">I", length) + data[i + 4 :]


def absurd_track_count(data: bytes, rng: random.Random) -> bytes:
    if len(data) < 14:
        return data
    count = rng.choice([0, 1, 65535, rng.randrange(65536)])
    return data[:10] + struct.pack(">H", count) + data[12:]


def absurd_division(data: bytes, rng: random.Random) -> bytes:
    if len(data) < 14:
        return data
    division = rng.choice([0, 1, 0x7FFF, 0x8000, 0xE728, rng.randrange(65536)])
    return data[:12] + struct.pack(">H", division) + data[14:]


def huge_delta(data: bytes, rng: random.Random) -> bytes:
    """Insert a maximal variable-length delta (and fix the chunk length)."""
    return _insert_event(data, rng, b"\x8f\xff\xff\x7f\x90\x3c\x40" * rng.randint(1, 20))


def endless_running_status(data: bytes, rng: random.Random) -> bytes:
    """Thousands of data bytes that continue the previous status."""
    return _insert_event(data, rng, b"\x00\x3c\x40" * rng.randint(100, 20000))


def absurd_meta_length(data: bytes, rng: random.Random) -> bytes:
    return _insert_event(data, rng, b"\x00\xff\x51\x8f\xff\xff\x7f\x07\xa1\x20")


def many_tracks(data: bytes, rng: random.Random) -> bytes:
    """Repeat the first track chunk many times and claim them in the header."""
    starts = _track_starts(data)
    if not starts or len(data) < 14:
        return data
    first = starts[0]
    (length,) = struct.unpack(">I", data[first + 4 : first + 8].ljust(4, b"\0"))
    chunk = data[first : first + 8 + length]
    # stay under the 8 MB size limit, so the track-count and note limits are what is tested
    copies = rng.randint(10, max(10, min(2000, 8_000_000 // max(1, len(chunk)))))
    header = data[:10] + struct.pack(">H", min(65535, copies)) + data[12:first]
    return header + chunk * copies


def _insert_event(data: bytes, rng: random.Random, event: bytes) -> bytes:
    starts = _track_starts(data)
    if not starts:
        return data + event
    tag = rng.choice(starts)
    at = min(len(data), tag + 8 + rng.randrange(16))
    out = bytearray(data[:at] + event + data[at:])
    if tag + 8 <= len(data):
        (length,) = struct.unpack(">I", data[tag + 4 : tag + 8])
        out[tag + 4 : tag + 8] = struct.pack(">I", (length + len(event)) % 2**32)
    return bytes(out)


MUTATIONS = [
    truncate,
    bit_flips,
    random_bytes,
    absurd_chunk_length,
    absurd_track_count,
    absurd_division,
    huge_delta,
    endless_running_status,
    absurd_meta_length,
    many_tracks,
]


def mutate(data: bytes, rng: random.Random, rounds: int | None = None) -> tuple[bytes, list[str]]:
    """Apply 1-3 random mutations; returns the bytes and the names of what was done."""
    names = []
    for _ in range(rounds or rng.randint(1, 3)):
        m = rng.choice(MUTATIONS)
        data = m(data, rng) if data else data
        names.append(m.__name__)
    return data, names
