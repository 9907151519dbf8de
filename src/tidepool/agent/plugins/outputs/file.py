"""outputs.file — write serialized metrics to stdout or files (for debugging a pipeline).

Options: `files` (default ["stdout"]; "stdout", "stderr" or paths, appended to), `use_batch_format` (default
false), `data_format` (default influx) and its serializer options. Accepted, not acted on: rotation_interval,
rotation_max_size, rotation_max_archives, compression_algorithm, compression_level.
"""

from __future__ import annotations

import sys
from typing import IO

from tidepool.agent.options import PluginOptions
from tidepool.agent.plugins import Serializer, WriteError
from tidepool.agent.plugins.outputs import OUTPUTS
from tidepool.lineproto import Metric


class FileOutput:
    def __init__(self, serializer: Serializer, files: list[str], use_batch_format: bool = False) -> None:
        self.serializer = serializer
        self.files = files
        self.use_batch_format = use_batch_format
        self._streams: list[IO[bytes]] = []
        self._owned: list[IO[bytes]] = []

    async def connect(self) -> None:
        for name in self.files:
            if name == "stdout":
                self._streams.append(sys.stdout.buffer)
            elif name == "stderr":
                self._streams.append(sys.stderr.buffer)
            else:
                try:
                    stream = open(name, "ab")  # noqa: SIM115  (kept open for the agent's lifetime)
                except OSError as exc:
                    raise WriteError(f"open {name}: {exc.strerror}") from None
                self._streams.append(stream)
                self._owned.append(stream)

    async def write(self, metrics: list[Metric]) -> None:
        if self.use_batch_format:
            body = self.serializer.serialize_batch(metrics)
        else:
            parts = []
            for metric in metrics:
                try:
                    parts.append(self.serializer.serialize(metric))
                except ValueError:
                    continue
            body = b"".join(parts)
        for stream in self._streams:
            try:
                stream.write(body)
                stream.flush()
            except OSError as exc:
                raise WriteError(f"failed to write message: {exc}") from None

    async def close(self) -> None:
        for stream in self._owned:
            stream.close()
        self._owned.clear()
        self._streams.clear()


@OUTPUTS.add("file")
def make_file_output(opts: PluginOptions, serializer: Serializer) -> FileOutput:
    opts.accept(
        "rotation_interval", "rotation_max_size", "rotation_max_archives", "compression_algorithm", "compression_level"
    )
    return FileOutput(serializer, opts.strings("files", ["stdout"]), opts.boolean("use_batch_format", False))
