"""The worker's confirmed batch publisher against a real RabbitMQ.

Fan-out sends a page of per-user messages as a few large socket writes; what arrives
must still be every message, whole, in order, with its properties.
"""

from __future__ import annotations

import pika

from schemas.messages import USER_SYNC
from worker.broker import FLUSH_BYTES, ConfirmPublisher, Outgoing, connect


def test_a_batch_arrives_whole_and_in_order(broker):
    broker.declare()
    # Sizes around py-amqp's frame size (128 KiB) and the write chunk, so that messages
    # are split over several frames and chunks end in the middle of messages.
    sizes = [10, 400, 131_072, 131_073, FLUSH_BYTES + 17, 3]
    bodies = [f"{i:05d}:".encode() + b"x" * sizes[i % len(sizes)] for i in range(1500)]
    with connect(broker.url, heartbeat=30) as conn:
        publisher = ConfirmPublisher(conn)
        publisher.publish(
            [
                Outgoing(
                    body=b,
                    exchange=broker.topology.exchange,
                    routing_key=USER_SYNC,
                    headers={"n": i},
                )
                for i, b in enumerate(bodies)
            ]
        )
        # The connection still works for single messages afterwards.
        publisher.publish(
            [Outgoing(body=b"last", exchange=broker.topology.exchange, routing_key=USER_SYNC)]
        )

    got = []
    with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
        channel = conn.channel()
        while (delivery := channel.basic_get(broker.topology.user_sync_queue, auto_ack=True))[0]:
            _, props, body = delivery
            got.append((body, props))
    assert [b for b, _ in got] == [*bodies, b"last"]
    assert [p.headers["n"] for _, p in got[:-1]] == list(range(1500))
    assert {(p.delivery_mode, p.content_type) for _, p in got} == {(2, "application/json")}
