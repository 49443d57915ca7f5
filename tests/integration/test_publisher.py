"""The worker's confirmed batch publisher against a real RabbitMQ.

Fan-out sends a page of per-user messages as a few large socket writes; what arrives
must still be every message, whole, in order, with its properties.
"""

from __future__ import annotations

import pika

from schemas.messages import USER_SYNC
from worker.broker import FLUSH_BYTES, ConfirmPublisher, Outgoing, connect

# Sizes around py-amqp's frame size (128 KiB) and the write chunk, so that messages are
# split over several frames and writes end in the middle of messages.
SIZES = [10, 400, 131_064, 131_072, 131_073, FLUSH_BYTES + 17, 3, 0]


def bodies(n: int) -> list[bytes]:
    return [f"{i:05d}:".encode() + b"x" * SIZES[i % len(SIZES)] for i in range(n)]


def received(broker) -> list[tuple[bytes, pika.BasicProperties]]:
    got = []
    with pika.BlockingConnection(pika.URLParameters(broker.url)) as conn:
        channel = conn.channel()
        while (delivery := channel.basic_get(broker.topology.user_sync_queue, auto_ack=True))[0]:
            _, props, body = delivery
            got.append((body, props))
    return got


def test_a_page_of_bodies_arrives_whole_and_in_order(broker):
    """The fan-out's case: same exchange, routing key and properties, framed by us."""
    broker.declare()
    sent = bodies(1600)
    with connect(broker.url, heartbeat=30) as conn:
        publisher = ConfirmPublisher(conn)
        for start in (0, 1000):  # two pages, as the fan-out sends them
            publisher.publish(
                [
                    Outgoing(body=b, exchange=broker.topology.exchange, routing_key=USER_SYNC)
                    for b in sent[start : start + 1000]
                ]
            )
        # The channel is still in step with the broker for py-amqp's own publishing.
        publisher.publish(
            [
                Outgoing(
                    body=b"last",
                    exchange=broker.topology.exchange,
                    routing_key=USER_SYNC,
                    headers={"n": -1},
                )
            ]
        )

    got = received(broker)
    assert [b for b, _ in got] == [*sent, b"last"]
    assert {(p.delivery_mode, p.content_type, p.content_encoding) for _, p in got} == {
        (2, "application/json", "utf-8")
    }


def test_messages_with_headers_arrive_whole_and_in_order(broker):
    """Retries and dead letters: each with headers of its own, through py-amqp."""
    broker.declare()
    sent = bodies(300)
    with connect(broker.url, heartbeat=30) as conn:
        ConfirmPublisher(conn).publish(
            [
                Outgoing(
                    body=b,
                    exchange=broker.topology.exchange,
                    routing_key=USER_SYNC,
                    headers={"n": i},
                )
                for i, b in enumerate(sent)
            ]
        )

    got = received(broker)
    assert [b for b, _ in got] == sent
    assert [p.headers["n"] for _, p in got] == list(range(300))
    assert {p.delivery_mode for _, p in got} == {2}
