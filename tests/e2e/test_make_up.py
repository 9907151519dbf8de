"""`make up`, as the README says: the pipeline starts, simulated readings become rows, Ctrl-C stops it cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port
from tests.e2e.pipeline import Pipeline

pytestmark = pytest.mark.slow


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_up_streams_simulated_readings_into_the_database(tmp_path: Path) -> None:
    pipeline = Pipeline(tmp_path / "data", free_port(), free_port())
    up_args = f"--data-dir {pipeline.data_dir} --brokers {pipeline.brokers} --db-url {pipeline.db_url} --no-status"
    out = open(tmp_path / "make-up.out", "wb")  # noqa: SIM115 - open for the child's lifetime
    make = subprocess.Popen(
        ["make", "-s", "up", f"UP_ARGS={up_args}"], cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300  # includes installing into .venv when it is not up to date
        while "tidepool is up" not in (tmp_path / "make-up.out").read_text():
            assert make.poll() is None, (tmp_path / "make-up.out").read_text()
            assert time.monotonic() < deadline, "make up did not come up in time"
            time.sleep(0.5)
        first = pipeline.wait_count(1, timeout=60)
        assert first >= 1, "no simulated reading reached the database"
        assert pipeline.wait_count(first + 1, timeout=60) > first, "readings stopped arriving"
    finally:
        os.killpg(make.pid, signal.SIGINT)  # Ctrl-C, as a person at the terminal would
        try:
            make.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(make.pid, signal.SIGKILL)
            raise
    text = (tmp_path / "make-up.out").read_text()
    assert "stopping: simulator, agent (final flush), broker, database" in text
    assert "Traceback" not in text
