#!/bin/sh
# The peers of `make bench` that come from Debian: InfluxDB 1.x, VictoriaMetrics, kcat, and Java + Maven for
# Apache Kafka (its jars come from Maven Central on first use; tansu comes from PyPI on first use). Run as root.
set -eu
apt-get update -q
apt-get install -y -q influxdb victoria-metrics kcat default-jre-headless maven
# The packages enable system services; the benchmark starts its own servers on free ports, so stop those.
for unit in influxdb victoria-metrics; do
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$unit" >/dev/null 2>&1 || true; fi
done
