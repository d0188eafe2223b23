"""Checks of a model card (``cnnhw/card.py``) against the build.json it was made from: every number
in the page's text is inside an element naming its key, and shows that key's value as rounded; and
headless Chromium renders the page (a screenshot that is not blank, no console message)."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from cnnhw.card import value_at

#: Elements whose text is not a statement of the card: commands, the title (the heading says it
#: with keys) and the plots (their text is drawn as paths).
NOT_STATEMENTS = {"code", "pre", "title", "style", "svg"}
VOID = {"meta", "br", "img", "link", "input", "hr"}


class _Statements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []  # (tag, data-key)
        self.keyed: list[tuple[str, str]] = []  # (key, text shown)
        self.loose: list[str] = []  # texts with a digit outside any keyed element

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append((tag, dict(attrs).get("data-key")))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break

    def handle_data(self, data):
        if any(t in NOT_STATEMENTS for t, _ in self.stack):
            return
        key = next((k for _, k in reversed(self.stack) if k is not None), None)
        if key is not None:
            self.keyed.append((key, data))
        elif re.search(r"\d", data):
            self.loose.append(data.strip())


def assert_every_number_is_a_fact(page: str, facts: dict) -> int:
    """Every number the page states is shown by an element naming its build.json key, and equals
    that key's value to the digits shown. Returns how many keyed values were checked."""
    parser = _Statements()
    parser.feed(page)
    assert not parser.loose, f"numbers that name no build.json key: {parser.loose[:5]}"
    for key, text in parser.keyed:
        value = value_at(facts, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            assert text == str(value), (key, text, value)
            continue
        if text in ("inf", "-inf"):
            assert value == float(text), (key, text, value)
            continue
        shown = float(text.replace(",", ""))
        decimals = len(text.split(".")[1]) if "." in text else 0
        assert abs(shown - value) <= 0.5 * 10 ** -decimals + 1e-9, (key, text, value)
    return len(parser.keyed)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def render_in_chromium(page: Path, screenshot: Path, profile: Path) -> str:
    """Render ``page`` in headless Chromium into ``screenshot``; returns what Chromium logged of the
    page's console. The flags keep it off the network (this machine has none) and out of $HOME."""
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--hide-scrollbars",
               "--window-size=1280,2400", f"--screenshot={screenshot}", page.resolve().as_uri()]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0 and screenshot.is_file(), completed.stderr[-2000:]
    return "\n".join(line for line in completed.stderr.splitlines() if "CONSOLE" in line)


def assert_not_blank(screenshot: Path) -> None:
    """Text, tables and bars: many pixels darker than the white page, in several colours."""
    from matplotlib.image import imread

    pixels = imread(screenshot)[..., :3]
    dark = (pixels.mean(axis=2) < 0.5).mean()
    colours = len(np.unique((pixels * 15).round().reshape(-1, 3), axis=0))
    assert dark > 0.005 and colours > 8, (dark, colours)
