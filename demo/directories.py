"""Directories for the fake Jira (``FakeJira.add_users``) built to test and measure scans.

* ``tower``: more than 1,000 users sharing every prefix of a stem several levels deep,
  usernames that are prefixes of others and one longer than any split, in mixed case and
  many scripts, with one display name for all and no e-mail address, so that Jira's
  answers (ties in display-name order go by username) hide the late ones behind the
  1,000-match cap and the username is the only way in.
* ``behind_the_cap``: a part of more than 1,000 users hiding, behind its cap, users
  whose next character occurs nowhere in the part's first 1,000 matches; each of them
  can be found some other way (a display-name word, an e-mail address, another user's
  username), except one that no query can reach.
* ``varied``: an ordinary directory with realistic name frequencies (a few common
  names, a long tail) and usernames in the usual styles, one in twenty keeping the
  letters of a non-English name; for measuring requests per user.

Each returns a list of ``add_user`` keyword dicts. Pure functions of their arguments.
"""

from __future__ import annotations

import itertools
import random
import unicodedata
from typing import Any

Person = dict[str, Any]

# Characters a username may continue with: ASCII, punctuation Jira allows, letters of
# other alphabets, CJK, and mixed case (Jira compares lower-cased).
TOWER_CHARS = "abcXYZ0189._-@'+éøßłΩж王李김"
UNREACHABLE = "mꙮ"  # behind_the_cap: its second character occurs nowhere else


def tower(
    count: int = 1500,
    *,
    stem: str = "Q.q-q_q'q+q@",
    display_name: str | None = "Tower Person",
    seed: int = 5,
) -> list[Person]:
    """``count`` users named ``stem`` + 3 characters of ``TOWER_CHARS``, plus the stem
    itself, two of its prefixes and one name 200 characters longer than the stem; all
    with ``display_name`` (None: their username)."""
    rng = random.Random(seed)
    suffixes = ["".join(t) for t in itertools.product(TOWER_CHARS, repeat=3)]
    names = [stem + s for s in rng.sample(suffixes, count)]
    names += [stem, stem[:3], stem[:7], stem + "x" * 200]
    names = list({name.lower(): name for name in names}.values())  # a short stem repeats
    return [
        {"name": name, "display_name": display_name or name, "email": None, "time_zone": None}
        for name in names
    ]


def behind_the_cap(count: int = 1200, *, part: str = "m") -> list[Person]:
    """``count`` users of ``part`` whose display names sort first, and behind them users
    with next characters seen nowhere in the part's answer.

    Found another way: ``mø…`` by the word "Zephyr" of their display names, ``m王…`` by
    their e-mail addresses, ``mß…`` because a user outside the part is called
    ``straße``. Not findable by any query: ``UNREACHABLE`` (its display name and e-mail
    start with the part too, and its second character occurs in no other username).
    """
    people: list[Person] = [
        {"name": f"{part}{i:05d}", "display_name": f"Aaron {i:05d}", "email": f"{part}{i}@x.org"}
        for i in range(count)
    ]
    people += [
        {"name": f"{part}ø{i}", "display_name": f"{part.upper()}ø Zephyr{i}", "email": None}
        for i in range(3)
    ]
    people += [
        {"name": f"{part}王{i}", "display_name": f"{part.upper()}王{i}", "email": f"wang{i}@x.org"}
        for i in range(3)
    ]
    people += [
        {"name": f"{part}ß{i}", "display_name": f"{part.upper()}ß{i}", "email": None}
        for i in range(3)
    ]
    people.append({"name": "straße", "display_name": "Straße", "email": None})
    people.append({"name": UNREACHABLE, "display_name": UNREACHABLE, "email": None})
    return people


def varied(count: int, *, seed: int = 3) -> list[Person]:
    """An ordinary directory of ``count`` people: given names and surnames drawn with
    Zipf-like frequencies from a few thousand made-up names, usernames as
    ``first.last``, ``flast`` or ``firstl`` (with a number when taken), e-mail
    ``first.last@``, and one person in twenty with a name such as ``Émilie Brown``
    whose username keeps its letters (``émilie.brown``)."""
    rng = random.Random(seed)
    firsts, lasts = _made_up_names(rng, 1500), _made_up_names(rng, 20000)
    first_weights = list(itertools.accumulate(1 / (i + 1) for i in range(len(firsts))))
    last_weights = list(itertools.accumulate(1 / (i + 1) ** 0.9 for i in range(len(lasts))))
    native_firsts = ("Émilie", "Łukasz", "Jörg", "José", "Øystein", "Ágnes", "Şebnem", "Zoë")
    native_lasts = ("Brown", "Nowak", "Müller", "Jensen", "Ødegård", "Kovács", "Núñez")
    taken: set[str] = set()
    people: list[Person] = []
    for i in range(count):
        if i % 20 == 19:
            first, last = rng.choice(native_firsts), rng.choice(native_lasts)
        else:
            first = rng.choices(firsts, cum_weights=first_weights)[0]
            last = rng.choices(lasts, cum_weights=last_weights)[0]
        style = rng.random()
        if style < 0.5:
            base = f"{first}.{last}".lower()
        elif style < 0.8:
            base = f"{first[0]}{last}".lower()
        else:
            base = f"{first}{last[0]}".lower()
        name = base
        while name in taken:
            name = f"{base}{rng.randint(1, 99999)}"
        taken.add(name)
        email = f"{_ascii(first)}.{_ascii(last)}{name[len(base) :]}@example.com"
        people.append({"name": name, "display_name": f"{first} {last}", "email": email})
    return people


def _made_up_names(rng: random.Random, count: int) -> list[str]:
    syllables = [
        "ka",
        "ri",
        "mo",
        "an",
        "el",
        "ta",
        "lo",
        "ne",
        "sa",
        "vi",
        "de",
        "ma",
        "ro",
        "li",
        "be",
        "to",
        "na",
        "ha",
        "jo",
        "mi",
        "ra",
        "le",
        "so",
        "ti",
        "da",
        "ge",
        "ba",
        "ku",
        "pe",
        "fi",
        "ch",
        "ol",
        "ar",
        "en",
        "us",
    ]
    found: set[str] = set()
    while len(found) < count:
        parts = rng.randint(2, 3)
        found.add("".join(rng.choice(syllables) for _ in range(parts)).capitalize())
    return sorted(found)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return folded.lower().replace("ł", "l") or "user"
