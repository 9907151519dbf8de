"""The tutorial's Telegraf config, read from docs/tutorial.md so the tests and the page cannot drift apart."""

from __future__ import annotations

import re

from tests.conftest import REPO

_BLOCK = re.compile(r"<!-- test: (?P<name>[\w-]+) -->\n```(?P<lang>\w*)\n(?P<body>.*?)\n```", re.S)


def tutorial_blocks() -> dict[str, str]:
    """Every block of docs/tutorial.md marked `<!-- test: name -->`, by name."""
    text = (REPO / "docs" / "tutorial.md").read_text()
    return {m["name"]: m["body"] for m in _BLOCK.finditer(text)}


TUTORIAL_TELEGRAF_CONF = tutorial_blocks()["telegraf-conf"] + "\n"
