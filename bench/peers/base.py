"""A server under test as a child process: free loopback ports, a fresh data dir, readiness, resources, stopping.

Every peer (tidepool's own servers and the real products) is one `ServerProcess`. It measures what the benchmark
tables print beside each throughput: the peak RSS of the server's whole process tree (VmHWM from /proc, so the
number is the server's, not the client's) and the CPU seconds it used.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class PeerUnavailable(Exception):
    """The peer cannot run on this machine (binary missing, jars not fetchable); the suite records why and goes on."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (held open together while choosing, so no two are the same)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def debian_version(package: str) -> str:
    """The installed Debian package version of `package`, or "unknown"."""
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def dir_size_bytes(path: Path) -> int:
    """Bytes allocated on disk to all files under `path` (as `du`; preallocated sparse files count as used)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total


def process_tree(pid: int) -> list[int]:
    """`pid` and all its living descendants, read from /proc/<pid>/task/*/children."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        task_dir = Path(f"/proc/{current}/task")
        try:
            tasks = list(task_dir.iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                found.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def peak_rss_mb_of(pid: int) -> float:
    """Peak RSS (VmHWM) of one living process in MiB; 0.0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds_of(pid: int) -> float:
    """User + system CPU seconds of one living process (and its reaped children); 0.0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[11..14] are utime, stime, cutime, cstime (stat fields 14–17)
    return sum(int(v) for v in fields[11:15]) / _CLOCK_TICKS


class ServerProcess(ABC):
    """One server child: `argv` run in `data_dir`'s parent, stdout+stderr to a log, ready when `ready()` says so.

    Invariant: `data_dir` is created fresh by `start()` and removed by `cleanup()`; nothing else is written.
    """

    name = "server"

    def __init__(self, work_dir: Path | None = None) -> None:
        self.work_dir = Path(tempfile.mkdtemp(prefix=f"bench-{self.name}-", dir=work_dir))
        self.data_dir = self.work_dir / "data"
        self.log_path = self.work_dir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._peak_rss_mb = 0.0
        self._cpu_s = 0.0
        self._cpu_before_restart = 0.0  # CPU of earlier incarnations, so usage deltas survive a restart

    # What each peer defines.
    @abstractmethod
    def argv(self) -> Sequence[str]:
        """The command line that runs the server in the foreground."""

    @abstractmethod
    def ready(self) -> bool:
        """True once the server answers its clients."""

    def version(self) -> str:
        return "unknown"

    def env(self) -> dict[str, str]:
        return os.environ.copy()

    def prepare(self) -> None:  # noqa: B027 (optional hook; most peers need no config file)
        """Write config files etc. into work_dir before the process starts."""

    # Lifecycle.
    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.prepare()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                list(self.argv()), stdout=log, stderr=subprocess.STDOUT, cwd=self.work_dir, env=self.env()
            )
        self.wait_until(self.ready, timeout, what="ready")
        return self

    def wait_until(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.log_tail()}")
            if condition():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not {what} within {timeout:.0f}s: {self.log_tail()}")

    def sample(self) -> None:
        """Record peak RSS and CPU of the whole process tree now (call before stopping; VmHWM dies with it)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pids = process_tree(self.proc.pid)
        self._peak_rss_mb = max(self._peak_rss_mb, sum(peak_rss_mb_of(p) for p in pids))
        self._cpu_s = self._cpu_before_restart + sum(cpu_seconds_of(p) for p in pids)

    @property
    def peak_rss_mb(self) -> float:
        self.sample()
        return self._peak_rss_mb

    @property
    def cpu_seconds(self) -> float:
        self.sample()
        return self._cpu_s

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.sample()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self._cpu_before_restart = self._cpu_s

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def data_size_bytes(self) -> int:
        return dir_size_bytes(self.data_dir)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> ServerProcess:
        return self.start() if self.proc is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()


def kafka_answers(bootstrap: str) -> bool:
    """True if a Kafka-protocol broker at `bootstrap` returns metadata with at least one broker."""
    from confluent_kafka.admin import AdminClient

    host, _, port = bootstrap.rpartition(":")
    if not port_open(int(port), host):
        return False
    try:
        metadata = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=2)
    except Exception:
        return False
    return bool(metadata.brokers)


class Profiler:
    """py-spy sampling a running server (its whole process tree) into collapsed stacks, until `stop()`."""

    def __init__(self, server: ServerProcess, output: Path, rate: int = 99) -> None:
        binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not os.path.exists(binary):
            raise PeerUnavailable("py-spy not installed (pip install -e '.[dev]')")
        if server.proc is None:
            raise RuntimeError(f"{server.name} is not running")
        self.output = output
        argv = [binary, "record", "--pid", str(server.proc.pid), "--subprocesses", "--nonblocking"]
        argv += ["--rate", str(rate), "--format", "raw", "--output", str(output)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> Path:
        """SIGINT makes py-spy write what it sampled; returns the collapsed-stack file."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.output


def summarize_stacks(collapsed: str, top: int = 15) -> tuple[int, list[tuple[str, float, float]]]:
    """The number of (non-idle) samples, and (frame, % of samples with it on top, % with it anywhere on the stack)
    for the `top` hottest own-time frames, followed by the `top` tidepool frames most often on the stack.

    `collapsed` is py-spy's raw format: one `frame;frame;…;leaf count` line per distinct stack.
    """
    own: dict[str, int] = {}
    anywhere: dict[str, int] = {}
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            anywhere[frame] = anywhere.get(frame, 0) + count
    hottest = sorted(own, key=lambda f: own[f], reverse=True)[:top]
    # then tidepool's own functions by time on the stack: where the library time above is spent from
    ours = sorted((f for f in anywhere if "tidepool/" in f and f not in hottest), key=lambda f: -anywhere[f])
    frames = hottest + ours[:top]
    return total, [(f, 100 * own.get(f, 0) / total, 100 * anywhere[f] / total) for f in frames]
