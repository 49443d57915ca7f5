import threading

from worker.consumer import ConnectedLoop


class Connection:
    def __init__(self) -> None:
        self.checks = 0

    def drain_events(self, timeout: float) -> None:
        raise TimeoutError

    def heartbeat_check(self) -> None:
        self.checks += 1


class Publisher:
    def publish(self, messages: object) -> None:
        pass


def test_a_wait_in_the_loops_thread_keeps_heartbeats_flowing_and_elsewhere_leaves_them():
    """Seen: a patient Jira client waiting out Retry-After in the loop's thread sent no
    heartbeats; RabbitMQ dropped the connection and redelivered the bulk request."""
    conn = Connection()
    loop = ConnectedLoop(conn, Publisher(), threading.Event(), beat=lambda: None)  # type: ignore[arg-type]
    loop.sleep(2.2)
    assert conn.checks >= 3
    before = conn.checks
    other = threading.Thread(target=loop.sleep, args=(0.3,))
    other.start()
    other.join()
    assert conn.checks == before  # another thread never touches the connection
