"""Sign in with Jira: the person's own credentials are checked by Jira, once, and only
Jira administrators get in. Nothing of the password is kept.

``/myself`` says who the credentials belong to (or refuses them), then
``/mypermissions?permissions=ADMINISTER`` whether that person holds Jira's global
administration permission (v3 on Cloud). Each refusal is one sentence for the page.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.errors import (
    AssetSyncError,
    ConfigError,
    JiraAuthError,
    JiraCaptcha,
    JiraRejected,
    TransientError,
    UserNotFound,
)
from worker.jira import Flavor, JiraClient

MAX_USERNAME = 255
MAX_SECRET = 2048


class SignInRefused(Exception):
    """The sign-in is refused; the message says why, for the person signing in."""


@dataclass(frozen=True)
class Administrator:
    user: str  # username (Data Center) or e-mail / accountId (Cloud)
    display_name: str


def check_administrator(
    *,
    base_url: str,
    flavor: Flavor,
    username: str,
    secret: str,
    timeout: float,
    verify: bool | str,
) -> Administrator:
    """Who signs in with ``username`` and ``secret`` (no username: a Data Center
    personal access token), if Jira says they are an administrator.

    :raises SignInRefused: with the sentence to show.
    """
    if not secret:
        raise SignInRefused("Give your password or token.")
    if len(username) > MAX_USERNAME or len(secret) > MAX_SECRET:
        raise SignInRefused("That username or password is longer than Jira accepts.")
    jira = JiraClient(
        base_url=base_url,
        username=username or None,
        token=secret,
        flavor=flavor,
        timeout=timeout,
        deadline=timeout * 2,
        max_response_bytes=1024 * 1024,
        verify=verify,
    )
    try:
        me = jira.myself()
        administrator = jira.may_administer()
    except JiraCaptcha:
        raise SignInRefused(
            "Jira wants a CAPTCHA answered after failed sign-ins, and refuses this password"
            " until then: sign in to Jira once in a browser, then here again."
        ) from None
    except JiraAuthError:
        what = "e-mail address and API token" if flavor == "cloud" else "username and password"
        raise SignInRefused(f"Jira did not accept that {what} (or token).") from None
    except TransientError as exc:
        raise SignInRefused(f"Jira cannot be reached now ({exc}); try again later.") from None
    except (UserNotFound, ConfigError):
        raise SignInRefused(
            f"{base_url} does not answer like Jira: ask whoever runs this console to check"
            " ASSETSYNC_JIRA_URL."
        ) from None
    except (JiraRejected, AssetSyncError) as exc:
        raise SignInRefused(f"Jira refused the sign-in: {exc}.") from None
    finally:
        jira.close()
    user = str(me.get("name") or me.get("emailAddress") or me.get("accountId") or username)
    shown = str(me.get("displayName") or user)
    if not administrator:
        raise SignInRefused(
            f"{shown} ({user}) is not a Jira administrator: only Jira administrators may use"
            " this console."
        )
    return Administrator(user=user[:MAX_USERNAME], display_name=shown[:MAX_USERNAME])
