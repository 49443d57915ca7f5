"""The one exception tree of assetsync: every error any component raises on purpose.

::

    AssetSyncError
    ├── PermanentError        retrying cannot help: dead-letter the message with the reason
    │   ├── InvalidMessage    bad JSON, unknown type or version, schema violation, too large
    │   │   └── BadDelivery   a webhook delivery that is not a user event (producers.webhooks)
    │   ├── UserNotFound      Jira has no such user (or group, or resource: it answered 404)
    │   ├── JiraRejected      Jira refused the request (400), or answered too much
    │   │   └── BadJiraUser   Jira's JSON for a user is not one we can store
    │   ├── StoreRejected     the database refused the data (a constraint, a bad value)
    │   ├── StaleSettings     a settings change based on a version someone replaced meanwhile
    │   ├── LostClaim         a replica's lease on an approval lapsed: another carries it on
    │   ├── Unwritable        a message cannot be framed for the broker (a content
    │   │                     header over the frame size)
    │   ├── RegistrationError Jira's webhooks are not as `webhooks register` can work with
    │   └── LogUnreadable     the security log or its state file cannot be read
    ├── TransientError        may work later: retry with backoff, then dead-letter
    │   ├── JiraUnavailable   429, 5xx, timeouts, connection errors
    │   ├── StoreUnavailable  deadlock, serialization failure, a lock or statement timeout
    │   │   └── StoreDown     the store takes no writes now (failover, read-only, shutdown,
    │   │                     unreachable): the loop waits for it, the message's retries kept
    │   ├── RunBusy           another replica holds the run's lock (it still scans): the
    │   │                     request is tried again later, its retries kept
    │   ├── BrokerRefused     RabbitMQ nacked what we published (a full queue)
    │   │   └── Unroutable    RabbitMQ returned it: no queue is bound to take it
    │   ├── BrokerLost        the connection to RabbitMQ is gone or unresponsive: the
    │   │                     loop reconnects and the broker redelivers what is unacked
    │   ├── PublishError      a producer's message was not confirmed (pika: unreachable,
    │   │                     refused, unroutable); nothing was published
    │   ├── BrokerUnavailable the webhook receiver cannot publish now: it answers 503
    │   ├── DeadQueueError    the dead-letter tool could not reach or use the dead queue
    │   └── WaitTimeout       a followed bulk run did not end in the time given
    ├── ConfigError           the deployment is wrong: stop with one clear line (exit 78)
    │   └── JiraAuthError     Jira answered 401/403 to our credentials
    │       └── JiraCaptcha   ...without checking them: Jira wants a CAPTCHA answered first
    └── Interrupted           the replica is shutting down: put the message back

The classes marked with a package are defined beside the code that raises them. The
adapters (``worker/jira/``, ``worker/store/``, ``producers/publisher.py``) translate
``httpx``, ``psycopg`` and ``pika`` errors into these, keeping the cause
(``raise ... from exc``); nothing above them imports those libraries' exceptions.
"""

from __future__ import annotations


class AssetSyncError(Exception):
    """Root of every error assetsync raises on purpose."""


class PermanentError(AssetSyncError):
    """The same message will fail the same way every time."""


class InvalidMessage(PermanentError):
    pass


class UserNotFound(PermanentError):
    pass


class JiraRejected(PermanentError):
    pass


class BadJiraUser(JiraRejected):
    pass


class StoreRejected(PermanentError):
    pass


class StaleSettings(PermanentError):
    pass


class LostClaim(PermanentError):
    """Another replica holds the background work this one leased (its lease lapsed
    while Jira kept it waiting): the batch in hand is dropped, that replica goes on."""


class Unwritable(PermanentError):
    pass


class TransientError(AssetSyncError):
    """Worth another try later.

    :param retry_after: seconds the other side asked us to wait (``Retry-After``), if any.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JiraUnavailable(TransientError):
    pass


class StoreUnavailable(TransientError):
    pass


class StoreDown(StoreUnavailable):
    """Not the message's fault: the asset store takes no writes from anyone now
    (``worker.store.sqlstates``). The loop waits for it instead of spending retries."""


class RunBusy(TransientError):
    """A bulk request whose run another replica is fanning out: never acked while the
    run is open (that replica may yet fail), but postponed at no cost to its retries."""


class BrokerRefused(TransientError):
    pass


class Unroutable(BrokerRefused):
    """A mandatory publish that no binding matched (a delay queue or its binding gone)."""


class BrokerLost(TransientError):
    """Never settled like other transient errors: nothing can be published or acked on
    a lost connection, so the loop drops it and reconnects."""


class ConfigError(AssetSyncError):
    """Settings or credentials are wrong; no message can succeed until a person acts."""


class JiraAuthError(ConfigError):
    pass


class JiraCaptcha(JiraAuthError):
    pass


class Interrupted(AssetSyncError):
    """Long work (a bulk fan-out) stopped at a checkpoint because the replica is stopping."""


class PublishError(TransientError):
    """A producer's message was not confirmed by the broker; it was not published."""
