"""The lab: what the tests and the benchmarks share, outside ``tests/`` so that a
benchmark never imports a test. ``servers`` (where RabbitMQ and PostgreSQL are),
``harness`` (worker processes, the test's own queues, database probes), ``proxy`` (a TCP
proxy that can go silent), ``pg_pair`` (a PostgreSQL primary and standby of its own),
``faults`` (the fault scenarios the fault suite asserts and ``bench.faults`` times).

Not part of the product: the wheel and the image leave it out.
"""
