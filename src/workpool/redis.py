"""Scaling out with Redis Streams: a consumer group as the source of a `Pool`.

``pip install 'workpool[redis]'`` (redis-py's asyncio client; this module
imports it only when a `RedisStream` or `RedisProducer` is created, and says
which extra to install if it is missing).  Everything here runs on asyncio
only.  See the guide page "Scaling out with Redis Streams" for the delivery
guarantees and how to run workers.
"""

from __future__ import annotations

from ._redis_codec import Codec as Codec
from ._redis_codec import JsonCodec as JsonCodec
from ._redis_producer import RedisProducer as RedisProducer
from ._redis_stream import RedisStream as RedisStream
from ._redis_stream import RedisStreamStats as RedisStreamStats

__all__ = ("Codec", "JsonCodec", "RedisProducer", "RedisStream", "RedisStreamStats")
