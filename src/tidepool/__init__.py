"""tidepool: the Kafka → Telegraf → CnosDB pipeline on one machine, in Python."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tidepool")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
