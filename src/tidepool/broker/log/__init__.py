"""The durable log: per partition, segments named by base offset with sparse offset and time indexes.

No network here; the server calls `LogManager` and `PartitionLog` with raw record batches.
"""
