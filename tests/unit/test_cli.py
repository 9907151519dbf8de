import subprocess

from tidepool import __version__


def test_help_lists_every_landed_command(tidepool_cmd: list[str]) -> None:
    from tidepool.cli import available_commands

    out = subprocess.run([*tidepool_cmd, "--help"], capture_output=True, text=True, check=True).stdout
    assert "Kafka → Telegraf → CnosDB" in out
    for name in available_commands():
        assert f"  {name}" in out


def test_version_prints_the_package_version(tidepool_cmd: list[str]) -> None:
    out = subprocess.run([*tidepool_cmd, "--version"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == f"tidepool, version {__version__}"


def test_unknown_command_is_a_usage_error_without_traceback(tidepool_cmd: list[str]) -> None:
    proc = subprocess.run([*tidepool_cmd, "no-such-command"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "No such command 'no-such-command'" in proc.stderr
    assert "Traceback" not in proc.stderr
