"""The Kafka-compatible broker: wire protocol (protocol/), durable log (log/), group coordinator (groups/), server."""
