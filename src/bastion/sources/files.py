"""File and stdin sources: canonical JSON Lines and Bluesky Jetstream replays.

A source yields :class:`Item`: the 1-based line number, and either a decoded event or the reason it is bad
(with the raw line, for the dead-letter output). Nothing here raises on bad input.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import msgspec

from bastion.events.atproto import map_file
from bastion.events.codec import BadEvent, convert_event, decode_event
from bastion.events.jetstream import JetstreamMapper
from bastion.events.model import AnyEvent


@dataclass(slots=True)
class Item:
    line: int
    event: AnyEvent | None
    error: str | None = None
    raw: bytes = b""


def _open(path: Path | str) -> IO[bytes]:
    if str(path) == "-":
        return sys.stdin.buffer
    return open(path, "rb")  # noqa: SIM115 - closed by the caller's generator


def read_lines(path: Path | str, skip: int = 0) -> Iterator[tuple[int, bytes]]:
    fh = _open(path)
    try:
        for n, line in enumerate(fh, 1):
            if n <= skip:
                continue
            yield n, line
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()


def canonical_items(path: Path | str, skip: int = 0) -> Iterator[Item]:
    for n, line in read_lines(path, skip):
        if not line.strip():
            continue
        try:
            yield Item(n, decode_event(line))
        except BadEvent as exc:
            yield Item(n, None, exc.reason, line)


def jetstream_items(path: Path | str, mapper: JetstreamMapper | None = None, skip: int = 0) -> Iterator[Item]:
    """Jetstream v1 JSON lines mapped to canonical events; unmappable messages are counted by the mapper.

    The mapper keeps state from every line (deletes refer to earlier creates), so lines before ``skip`` are
    still read and mapped, only not yielded."""
    mapper = mapper or JetstreamMapper()
    for n, line in read_lines(path):
        if not line.strip():
            continue
        try:
            msg = msgspec.json.decode(line)
        except msgspec.DecodeError as exc:
            if n > skip:
                yield Item(n, None, f"invalid JSON: {exc}", line)
            continue
        except RecursionError:
            if n > skip:
                yield Item(n, None, "invalid JSON: nested too deeply", line)
            continue
        for obj in mapper.map(msg):
            if n <= skip:
                continue
            try:
                yield Item(n, convert_event(obj))
            except BadEvent as exc:
                yield Item(n, None, f"jetstream mapping produced an invalid event: {exc.reason}", line)


def atproto_items(path: Path | str, skip: int = 0) -> Iterator[Item]:
    """Any other recorded atproto file (automod capture, firehose commit, relay scenario, Ozone events; see
    :mod:`bastion.events.atproto`) mapped to canonical events; ``line`` is the 1-based event number."""
    events, _ignored = map_file(path)
    for n, obj in enumerate(events, 1):
        if n <= skip:
            continue
        try:
            yield Item(n, convert_event(obj))
        except BadEvent as exc:
            yield Item(n, None, f"atproto mapping produced an invalid event: {exc.reason}",
                       msgspec.json.encode(obj))


FORMATS = ("canonical", "jetstream", "atproto")


def items(path: Path | str, fmt: str = "canonical", skip: int = 0,
          mapper: JetstreamMapper | None = None) -> Iterator[Item]:
    if fmt == "canonical":
        return canonical_items(path, skip)
    if fmt == "jetstream":
        return jetstream_items(path, mapper, skip)
    if fmt == "atproto":
        return atproto_items(path, skip)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
