"""What a block's memories look like, declared before elaboration so the planner can count
block RAMs without building anything. Every block that owns a ``Memory`` has a ``memories()``
method returning these, and its ``elaborate`` creates exactly those memories."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MemoryShape:
    role: str  # what it holds, for reports: "line buffer", "weights", ...
    width: int  # bits per word
    depth: int  # words
    rom: bool = False  # read-only, contents from the bitstream (weights)
    spram: bool = False  # in SPRAM blocks (gateware/spram.py), loaded at boot: no block RAM


def questioned_only(component) -> None:
    """Mark a component tree that was built only to be asked questions (``memories()``), never
    elaborated, so Amaranth does not warn about unused elaboratables when it is dropped.
    (Amaranth's own switch is the private ``MustUse`` flag set here.)"""
    from amaranth import Elaboratable

    seen = set()
    pending = [component]
    while pending:
        item = pending.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Elaboratable):
            item._MustUse__used = True
            pending.extend(vars(item).values())
        elif isinstance(item, (list, tuple)):
            pending.extend(item)
