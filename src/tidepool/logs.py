"""Process-wide logging: one line per notable event, `time level component: message`."""

import logging
import sys

LEVELS = ("debug", "info", "warning", "error")


class _Formatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03d %(levelname)-5s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")


def setup_logging(level: str = "info") -> None:
    """Send tidepool's log lines to stderr at `level`; third-party libraries log warnings and up only."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("tidepool").setLevel(level.upper())


def get_logger(component: str) -> logging.Logger:
    """The logger of one component, named so its lines read `tidepool.broker: …`."""
    return logging.getLogger(f"tidepool.{component}")
