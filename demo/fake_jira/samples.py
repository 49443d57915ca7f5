"""Sample people for the demo and the benchmarks: realistic names, some service, app and
mixed-case accounts, one in twenty with a name that is not ASCII."""

from __future__ import annotations

import random
import unicodedata
from typing import Any

Json = dict[str, Any]


# -- sample directory -------------------------------------------------------------------------

# fmt: off
FIRST_NAMES = (
    "Ada", "Ben", "Chloé", "David", "Emma", "Felix", "Grace", "Hugo", "Isla", "Jürgen",
    "Kira", "Liam", "Mia", "Noah", "Olivia", "Priya", "Quinn", "Renée", "Sam", "Tariq",
    "Uma", "Victor", "Wei", "Xavier", "Yara", "Zoë", "Aiko", "Björn", "Carlos", "Dana",
    "Elif", "Fatima", "Gustav", "Hana", "Ivan", "José", "Kofi", "Lars", "Marta", "Nina",
    "Omar", "Paula", "Rosa", "Sofia", "Tomás", "Ulla", "Vera", "Wendy", "Yusuf", "Zara",
)
LAST_NAMES = (
    "Davis", "Smith", "Nguyen", "Müller", "García", "Okafor", "Kowalski", "Rossi", "Tanaka",
    "Schmidt", "Dubois", "Novak", "Jensen", "O'Brien", "Patel", "Kim", "Silva", "Haddad",
    "Ivanova", "Lindqvist", "Brown", "Wilson", "Taylor", "Martin", "Lee", "Walker", "Young",
    "Hall", "Evans", "Fischer", "Weber", "Becker", "Moreau", "Lambert", "Costa", "Ferreira",
    "Sato", "Chen", "Wang", "Ali", "Khan", "Singh", "Cohen", "Andersen", "Berg", "Quintero",
    "Ulrich", "Xu", "Zimmermann", "Van Dyke", "Eriksson", "Yilmaz", "Adeyemi", "Ramírez",
)
# Usernames that do not start with a letter exist in every real directory and trip up
# naive "a..z" sharding, so the sample has some.
SERVICE_ACCOUNTS = (
    ("9lives", "Nine Lives"), ("_svc", "Service Account"), ("007", "Bond Integration"),
    ("_jenkins", "Jenkins"), ("42answers", "Answers Bot"), ("_backup", "Backup Job"),
    ("1stline", "First Line Support"), ("_monitoring", "Monitoring"),
)
APP_ACCOUNTS = ("Slack", "GitHub for Jira", "Automation for Jira", "Tempo", "Zephyr", "Opsgenie")
TIME_ZONES = ("Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney", "UTC",
              "Europe/London", "America/Los_Angeles", "Asia/Kolkata")
LOCALES = ("en_US", "de_DE", "en_GB", "ja_JP", "fr_FR", "es_ES")
# People whose username keeps the letters of their name, as many directories have.
NATIVE_FIRST_NAMES = (
    "Émilie", "Łukasz", "Jörg", "José", "Øystein", "Ágnes", "Şebnem", "Ærling", "Íñigo",
    "Çağla", "Zoë", "Renée", "Ōta", "Ðorđe", "Ülkü",
)
NATIVE_LAST_NAMES = (
    "Brown", "Nowak", "Müller", "Jensen", "Ødegård", "Kovács", "Yılmaz", "Ångström",  # noqa: RUF001
    "Núñez", "Škoda", "Doğan", "Þórsson", "Łęcki", "García",
)
CJK_NAMES = (("王", "芳"), ("李", "伟"), ("张", "敏"), ("刘", "洋"), ("陈", "静"), ("佐藤", "健"),
             ("김", "민준"), ("田中", "花子"))
# fmt: on
SERVICE_EVERY = 25  # one person in 25 is a service account
MIXED_CASE_EVERY = 100  # legacy mixed-case usernames: lookups must ignore case


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum())


def _unique(base: str, rng: random.Random, taken: set[str]) -> str:
    """``base`` plus a short number, widening the range on collisions."""
    for attempt in range(60):
        top = 99 if attempt < 3 else 9999 if attempt < 20 else 999999
        candidate = f"{base}{rng.randint(1, top)}"
        if candidate.lower() not in taken:
            return candidate
    raise RuntimeError(f"cannot find a free username for {base!r}")


def sample_people(
    n: int, rng: random.Random, taken: set[str], native_every: int = 0
) -> list[dict[str, Any]]:
    firsts = [(f, _ascii(f)) for f in FIRST_NAMES]
    lasts = [(s, _ascii(s)) for s in LAST_NAMES]
    people: list[dict[str, Any]] = []
    for i in range(n):
        if i % SERVICE_EVERY == SERVICE_EVERY // 2:
            person = _service_person(i // SERVICE_EVERY, taken)
        elif native_every and i % native_every == native_every - 1:
            person = _native_person(i // native_every, rng, taken)
        else:
            (first, first_a), (last, last_a) = rng.choice(firsts), rng.choice(lasts)
            name = _unique(f"{first_a[0]}{last_a}", rng, taken)
            digits = name[1 + len(last_a) :]
            if i % MIXED_CASE_EVERY == MIXED_CASE_EVERY - 1:
                name = name.capitalize()
            person = {
                "name": name,
                "display_name": f"{first} {last}",
                "email": f"{first_a}.{last_a}{digits}@example.com",
            }
        taken.add(person["name"].lower())
        person["time_zone"] = TIME_ZONES[rng.randrange(len(TIME_ZONES))]
        person["locale"] = LOCALES[rng.randrange(len(LOCALES))]
        people.append(person)
    return people


def _native_person(index: int, rng: random.Random, taken: set[str]) -> dict[str, Any]:
    """``émilie.brown``, ``łukasz.nowak``; one in eight a CJK name such as ``王芳``."""
    if index % 8 == 7:
        family, given = CJK_NAMES[rng.randrange(len(CJK_NAMES))]
        base, display = family + given, family + given
        email_base = f"user{index}"
    else:
        first = rng.choice(NATIVE_FIRST_NAMES)
        last = rng.choice(NATIVE_LAST_NAMES)
        base, display = f"{first}.{last}".lower(), f"{first} {last}"
        email_base = f"{_ascii(first)}.{_ascii(last)}"
    name = base
    while name.lower() in taken:
        name = f"{base}{rng.randint(1, 9999)}"
    return {
        "name": name,
        "display_name": display,
        "email": f"{email_base}{name[len(base) :]}@example.com",
    }


def _service_person(index: int, taken: set[str]) -> dict[str, Any]:
    base, display = SERVICE_ACCOUNTS[index % len(SERVICE_ACCOUNTS)]
    round_ = index // len(SERVICE_ACCOUNTS)
    name = base if round_ == 0 else f"{base}{round_ + 1}"
    while name.lower() in taken:
        round_ += 1
        name = f"{base}{round_ + 1}"
    return {"name": name, "display_name": display, "email": f"{name}@example.com"}


def sample_accounts(count: int, taken: set[str]) -> list[dict[str, Any]]:
    """Cloud app (bots, no e-mail) and customer (service desk) accounts, alternating."""
    accounts: list[dict[str, Any]] = []
    for j in range(count):
        if j % 2 == 0:
            app = APP_ACCOUNTS[(j // 2) % len(APP_ACCOUNTS)]
            name = f"addon_{_ascii(app)}{j // 2 + 1}"
            attrs = {
                "name": name,
                "display_name": app,
                "email": None,
                "account_type": "app",
                "time_zone": None,
                "locale": None,
            }
        else:
            name = f"customer{j // 2 + 1}"
            attrs = {
                "name": name,
                "display_name": f"Customer {j // 2 + 1}",
                "email": f"{name}@customers.example.org",
                "account_type": "customer",
                "time_zone": "UTC",
                "locale": "en_US",
            }
        if name.lower() in taken:
            attrs["name"] = name = f"{name}_{len(taken)}"
        taken.add(name.lower())
        accounts.append(attrs)
    return accounts
