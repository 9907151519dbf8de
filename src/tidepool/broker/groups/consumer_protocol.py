"""Read the consumer protocol's subscription bytes (the JoinGroup metadata of protocol type "consumer").

The coordinator treats member metadata as opaque except here: OffsetDelete must refuse topics that an active
member subscribes to (GROUP_SUBSCRIBED_TO_TOPIC), as Kafka does.
"""

from __future__ import annotations

import struct

from kio.index import load_entity_schema
from kio.serial import entity_reader
from kio.static.constants import EntityType

_NEWEST = 3


def subscribed_topics(metadata: bytes) -> set[str]:
    """Topics named in a ConsumerProtocolSubscription (any version); empty when the bytes are not one."""
    if len(metadata) < 2:
        return set()
    (version,) = struct.unpack_from(">h", metadata)
    if version < 0:
        return set()
    # Newer versions only append fields, so read them with the newest schema kio knows (as Kafka does).
    schema = load_entity_schema("consumer_protocol_subscription", min(version, _NEWEST), EntityType.data)
    try:
        subscription, _ = entity_reader(schema)(metadata, 2)
    except Exception:  # a client's own protocol with "consumer" type but another layout
        return set()
    return set(getattr(subscription, "topics", ()))
