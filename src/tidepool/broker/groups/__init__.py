"""Kafka's classic consumer-group coordinator: membership, rebalances and durable committed offsets.

`coordinator` is the group state machine, `store` keeps offsets and group metadata on disk, `api` turns kio
request entities into coordinator calls and kio response entities, `cli` is `tidepool groups`.
"""
