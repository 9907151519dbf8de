"""Telegraf TOML handling: substitution, comments, defaults, [agent], unknown options, plugin building."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.tutorial import TUTORIAL_TELEGRAF_CONF
from tidepool.agent.config import AgentConfig, load, load_text, strip_comments, substitute_env
from tidepool.agent.options import ConfigError, parse_duration, parse_size
from tidepool.agent.runner import build

TUTORIAL = "\n" + TUTORIAL_TELEGRAF_CONF


def _config(text: str, environ: dict[str, str] | None = None) -> AgentConfig:
    config = AgentConfig()
    load_text(config, text, "telegraf.conf", environ or {})
    return config


def test_tutorial_config_builds_with_telegraf_defaults() -> None:
    built = build(_config(TUTORIAL))
    assert built.settings.metric_batch_size == 1000
    assert built.settings.metric_buffer_limit == 10000
    assert built.settings.flush_interval == 10.0
    assert built.global_tags == {"host": socket.gethostname()}
    (output,) = built.outputs
    assert output.output.url == "http://127.0.0.1:8902/api/v1/write?db=public"  # type: ignore[attr-defined]
    assert output.output.headers["Authorization"] == "Basic cm9vdDo="  # type: ignore[attr-defined]
    assert output.output.idle_conn_timeout == 10.0  # type: ignore[attr-defined]
    (running,) = built.inputs
    settings = running.input.settings  # type: ignore[attr-defined]
    assert settings.consumer_group == "telegraf_metrics_consumers"
    assert settings.offset == "earliest"
    assert settings.max_undelivered_messages == 1000


def test_unknown_option_fails_with_telegrafs_message_and_line() -> None:
    text = TUTORIAL.replace('  topics = ["oceanic"]', '  topics = ["oceanic"]\n  topic = "x"\n  bogus = 1')
    with pytest.raises(ConfigError) as err:
        build(_config(text))
    assert str(err.value) == (
        "loading config file telegraf.conf failed: plugin inputs.kafka_consumer: line 2: configuration specified "
        'the fields ["topic" "bogus"], but they were not used; this is either a typo or this config option does '
        "not exist in this version"
    )


def test_unknown_agent_option_fails_too() -> None:
    with pytest.raises(ConfigError, match=r'fields \["flush_intervall"\], but they were not used'):
        _config('[agent]\n  flush_intervall = "1s"\n' + TUTORIAL)


def test_agent_section_sets_flush_and_batch_and_hostname() -> None:
    text = '[agent]\n  flush_interval = "250ms"\n  metric_batch_size = 5000\n  hostname = "buoy-7"\n' + TUTORIAL
    built = build(_config(text))
    assert built.outputs[0].flush_interval == 0.25
    assert built.outputs[0].batch_size == 5000
    assert built.global_tags["host"] == "buoy-7"


def test_omit_hostname_and_global_tags() -> None:
    text = '[global_tags]\n  site = "north"\n[agent]\n  omit_hostname = true\n' + TUTORIAL
    assert build(_config(text)).global_tags == {"site": "north"}


def test_env_substitution_forms() -> None:
    env = {"BROKER": "10.0.0.1:9092", "EMPTY": ""}
    assert substitute_env("${BROKER}", env) == "10.0.0.1:9092"
    assert substitute_env("${MISSING}", env) == "${MISSING}"
    assert substitute_env("${MISSING:-d}|${EMPTY:-d}|${EMPTY-d}|${MISSING-d}", env) == "d|d||d"
    assert substitute_env("${BROKER:?need it}", env) == "10.0.0.1:9092"
    with pytest.raises(ConfigError, match="required variable MISSING is missing a value: set MISSING"):
        substitute_env("${MISSING:?set MISSING}", env)
    with pytest.raises(ConfigError, match="required variable EMPTY"):
        substitute_env("${EMPTY:?}", env)
    assert substitute_env("${EMPTY?x}", env) == ""
    assert substitute_env("$BROKER|$MISSING|$$|$$$BROKER|${EMPTY:+p}|${EMPTY+p}|${BROKER:+p}", env) == (
        "10.0.0.1:9092|$MISSING|$|$10.0.0.1:9092||p|p"
    )


def test_env_substitution_happens_after_comments_are_stripped_and_before_toml() -> None:
    text = TUTORIAL.replace('["oceanic"]', '["${TOPIC}"]  # ${NOT_SET:?never evaluated in a comment}')
    text = text.replace("idle_conn_timeout = 10", "idle_conn_timeout = ${IDLE}")
    built = build(_config(text, {"TOPIC": "sea", "IDLE": "3"}))
    assert built.inputs[0].input.settings.topics == ["sea"]  # type: ignore[attr-defined]
    assert built.outputs[0].output.idle_conn_timeout == 3.0  # type: ignore[attr-defined]


def test_strip_comments_keeps_hashes_inside_strings() -> None:
    text = 'a = "x # y" # comment\nb = \'p#q\'\n# whole line\nc = """m\n# kept"""\n'
    assert strip_comments(text) == 'a = "x # y" \nb = \'p#q\'\n\nc = """m\n# kept"""\n'


def test_durations_and_sizes_follow_telegraf() -> None:
    assert parse_duration(10) == 10.0
    assert parse_duration(1.5) == 1.5
    assert parse_duration("1m30s") == 90.0
    assert parse_duration("100ms") == 0.1
    assert parse_duration("1d") == 86400.0
    with pytest.raises(ConfigError, match="invalid duration"):
        parse_duration("10 parsecs")
    assert parse_size("1MB") == 1_000_000
    assert parse_size("64KiB") == 65536
    assert parse_size(1000) == 1000


def test_config_directory_merges_conf_files_and_later_agent_keys_win(tmp_path: Path) -> None:
    main = tmp_path / "telegraf.conf"
    main.write_text('[agent]\n  flush_interval = "5s"\n' + TUTORIAL)
    extra = tmp_path / "telegraf.d"
    extra.mkdir()
    (extra / "b.conf").write_text('[agent]\n  flush_interval = "1s"\n[[outputs.file]]\n  files = ["stdout"]\n')
    (extra / "ignored.txt").write_text("not toml at all [")
    config = load([str(main)], [str(extra)], environ={})
    assert config.agent.flush_interval == 1.0
    assert [o.name for o in config.outputs] == ["http", "file"]
    built = build(config, output_filter=["file"])
    assert [o.plugin_id for o in built.outputs] == ["outputs.file"]


def test_invalid_offset_and_missing_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match='invalid offset "latest"'):
        build(_config(TUTORIAL.replace('data_format = "json"', 'data_format = "json"\n  offset = "latest"')))
    with pytest.raises(ConfigError, match=r"loading config file .*nope.conf failed: open .*: no such file"):
        load([str(tmp_path / "nope.conf")], environ={})
    with pytest.raises(ConfigError, match="undefined but requested input: nosuch"):
        build(_config(TUTORIAL.replace("inputs.kafka_consumer", "inputs.nosuch")))


def test_input_filter_and_kafka_client_options() -> None:
    text = (
        TUTORIAL.replace(
            'data_format = "json"',
            'data_format = "json"\n  sasl_username = "u"\n  sasl_password = "p"\n  sasl_mechanism = "SCRAM-SHA-256"\n'
            '  enable_tls = true\n  tls_ca = "/etc/ca.pem"\n  consumer_fetch_default = "2MB"\n'
            '  consumer_fetch_max_wait = "100ms"\n  balance_strategy = "sticky"\n  kafka_version = "2.5.1"',
        )
        + "[[inputs.internal]]\n"
    )
    built = build(_config(text), input_filter=["internal"])
    assert [i.plugin_id for i in built.inputs] == ["inputs.internal"]
    (kafka,) = build(_config(text), input_filter=["kafka_consumer"]).inputs
    client = kafka.input.client_config()  # type: ignore[attr-defined]
    assert client["security.protocol"] == "SASL_SSL"
    assert (client["sasl.mechanism"], client["sasl.username"], client["sasl.password"]) == ("SCRAM-SHA-256", "u", "p")
    assert client["ssl.ca.location"] == "/etc/ca.pem"
    assert client["max.partition.fetch.bytes"] == 2_000_000
    assert client["fetch.wait.max.ms"] == 100
    assert client["partition.assignment.strategy"] == "cooperative-sticky"
    assert client["enable.auto.offset.store"] is False


def test_processors_are_refused_as_absent() -> None:
    with pytest.raises(ConfigError, match="processors are not supported by tidepool agent"):
        _config(TUTORIAL + "[[processors.rename]]\n")


def test_config_from_a_url() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = TUTORIAL.encode() if self.path == "/telegraf.conf" else b"no"
            self.send_response(200 if self.path == "/telegraf.conf" else 404)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        config = load([f"{base}/telegraf.conf"], environ={})
        assert [p.full_name for p in config.inputs + config.outputs] == ["inputs.kafka_consumer", "outputs.http"]
        with pytest.raises(ConfigError, match="failed to retrieve remote config: 404"):
            load([f"{base}/missing.conf"], environ={})
    finally:
        server.shutdown()


def test_test_mode_still_checks_output_options() -> None:
    text = TUTORIAL.replace("idle_conn_timeout = 10", "idle_conn_timeout = 10\n  urll = 'x'")
    with pytest.raises(
        ConfigError, match=r'plugin outputs.http: line \d+: configuration specified the fields \["urll"\]'
    ):
        build(_config(text), with_outputs=False)
    assert build(_config(TUTORIAL), with_outputs=False).outputs == []


def test_unsupported_sasl_mechanism_is_refused_at_start() -> None:
    text = TUTORIAL.replace('data_format = "json"', 'data_format = "json"\n  sasl_mechanism = "AWS-MSK-IAM"')
    with pytest.raises(ConfigError, match="unsupported sasl_mechanism 'AWS-MSK-IAM'"):
        build(_config(text))


def test_default_config_comes_from_telegraf_config_path(tmp_path: Path) -> None:
    path = tmp_path / "telegraf.conf"
    path.write_text(TUTORIAL)
    config = load([], environ={"TELEGRAF_CONFIG_PATH": str(path)})
    assert config.files == [str(path)]
