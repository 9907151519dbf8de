"""Config text handling against Telegraf's own config loader: comments, `$VAR`/`${VAR…}` substitution, messages.

A small Go program (Telegraf pinned, from the Go module proxy) loads a config with Telegraf's config.LoadConfigData
and prints the resulting global tags or the error. The same text goes through tidepool's loader. Needs `go`.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.interop.test_agent_telegraf_serializer import build_go_program
from tidepool.agent.config import AgentConfig, load_text
from tidepool.agent.options import ConfigError

pytestmark = [pytest.mark.interop, pytest.mark.timeout(900)]

PROGRAM = r"""// Loads a Telegraf config from stdin with Telegraf's loader; prints global tags as JSON or ERR <error>.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/influxdata/telegraf/config"
)

func main() {
	data, _ := io.ReadAll(os.Stdin)
	c := config.NewConfig()
	if err := c.LoadConfigData(data, "telegraf.conf"); err != nil {
		fmt.Printf("ERR %s\n", err)
		return
	}
	b, _ := json.Marshal(c.Tags)
	fmt.Printf("%s\n", b)
}
"""

ENV = {"X": "ex", "E": "", "lower": "yes", "PORT": "8086"}
VALUES = [
    "$X", "${X}", "${X}_1", "$X_1", "$UNSET", "${UNSET}", "${UNSET:-}", "${UNSET:-d}", "${E-d}", "${E:-d}",
    "${E+p}", "${E:+p}", "${X:+p}", "${UNSET+p}", "$$", "$$$X", "a $ b", "^abc$", "${1}", "x$", "$lower",
    "${lower}", "http://${HOST:-localhost}:${PORT:-9999}/${X}", "${X:?}", "${X?m}", "${E?m}", "#not a comment",
    "${UNSET:?need it}", "${E:?empty}", "${UNSET?}",
]  # fmt: skip


def _telegraf(binary: object, text: str) -> str:
    result = subprocess.run(
        [str(binary)], input=text.encode(), capture_output=True, timeout=60, env={**os.environ, **ENV}, check=True
    )
    return result.stdout.decode().strip()


def _tidepool(text: str) -> str:
    config = AgentConfig()
    try:
        load_text(config, text, "telegraf.conf", {**os.environ, **ENV})
    except ConfigError as exc:
        return f"ERR {exc}"
    return json.dumps(config.global_tags, separators=(",", ":"), sort_keys=True)


@pytest.mark.parametrize("value", VALUES)
def test_substitution_and_comments_as_telegraf(value: str) -> None:
    binary = build_go_program("telegraf-config", PROGRAM)
    text = f'# a comment with ${{UNSET:?never}}\n[global_tags]\n  a = "{value}" # trailing ${{UNSET:?never}}\n'
    text += "[agent]\n  omit_hostname = true\n"
    theirs, ours = _telegraf(binary, text), _tidepool(text)
    if theirs.startswith("ERR"):
        assert ours == theirs.replace("ERR ", "ERR loading config file telegraf.conf failed: ", 1)
    else:
        assert json.loads(ours) == json.loads(theirs)


def test_unknown_agent_option_message_as_telegraf() -> None:
    binary = build_go_program("telegraf-config", PROGRAM)
    text = '[global_tags]\n  a = "b"\n\n[agent]\n  omit_hostname = true\n  flush_intervall = "1s"\n'
    theirs = _telegraf(binary, text)
    assert theirs.startswith("ERR line 1: configuration specified the fields")
    assert _tidepool(text) == theirs.replace("ERR ", "ERR loading config file telegraf.conf failed: ", 1)
