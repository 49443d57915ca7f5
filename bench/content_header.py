"""``python -m bench.content_header``: what the wrapped decoder of basic properties
(``worker.content_header``) costs each delivery, against py-amqp's own.

Decodes the content header of a signed per-user message (content type and encoding,
the signature header, RabbitMQ's delivery count, persistent) with py-amqp's decoder and
with the wrapped one, in interleaved rounds, and prints each one's CPU time per
decode (the 10th percentile of the rounds: the least disturbed by other processes).
"""

from __future__ import annotations

import argparse
import time

import amqp
import amqp.serialization

from worker import content_header


def per_decode_ns(decode: content_header.Decoder, raw: bytes, n: int) -> float:
    start = time.process_time_ns()
    for _ in range(n):
        decode(raw, 0)
    return (time.process_time_ns() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.content_header")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--per-round", type=int, default=2000)
    args = parser.parse_args()
    headers = {"assetsync-signature": "sha256=" + "a" * 64, "x-delivery-count": 0}
    raw = amqp.Message(
        b"{}",
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=2,
        application_headers=headers,
    )._serialize_properties()
    library = amqp.serialization.PROPERTY_CLASSES[60]
    content_header.install_amqp()
    wrapped = amqp.serialization.PROPERTY_CLASSES[60]
    assert wrapped is not library, "already installed: run this in a process of its own"
    times: dict[str, list[float]] = {"py-amqp": [], "wrapped": []}
    for _ in range(args.rounds):
        times["py-amqp"].append(per_decode_ns(library, raw, args.per_round))
        times["wrapped"].append(per_decode_ns(wrapped, raw, args.per_round))
    low = {name: sorted(t)[len(t) // 10] for name, t in times.items()}
    for name, ns in low.items():
        print(f"{name:8} {ns / 1000:6.2f} us per decode")
    print(f"wrapped / py-amqp: {low['wrapped'] / low['py-amqp']:.3f}")


if __name__ == "__main__":
    main()
