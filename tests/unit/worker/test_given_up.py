from schemas.topology import ERROR_HEADER
from worker.given_up import why_given_up

WORK = "assetsync.user-sync"


def test_rabbitmq_giving_up_at_the_delivery_limit_is_said_so():
    headers = {
        ERROR_HEADER: "Jira answered 503",  # from an earlier retry
        "x-death": [
            {"queue": WORK, "reason": "delivery_limit", "count": 1},
            {"queue": "assetsync.retry.1000ms", "reason": "expired", "count": 1},
        ],
    }
    assert why_given_up(headers, work_queue=WORK) == (
        "RabbitMQ dead-lettered its message (delivery_limit: delivered more times than the"
        " queue's delivery limit, never acked)"
    )


def test_a_workers_dead_letter_says_the_workers_reason():
    headers = {
        ERROR_HEADER: b"gave up after 6 attempts: Jira answered 503",
        "x-death": [{"queue": b"assetsync.retry.600000ms", "reason": b"expired"}],
    }
    assert why_given_up(headers, work_queue=WORK) == "gave up after 6 attempts: Jira answered 503"


def test_a_rejection_keeps_what_the_worker_said_and_nothing_is_left_unprintable():
    headers = {ERROR_HEADER: "bad\nline", "x-death": [{"queue": WORK, "reason": "rejected"}]}
    assert why_given_up(headers, work_queue=WORK) == (
        "RabbitMQ dead-lettered its message (rejected: rejected by a worker): bad\\nline"
    )
    assert why_given_up({"x-death": "garbage"}, work_queue=WORK) == (
        "dead-lettered, no reason given"
    )
