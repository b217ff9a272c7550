"""The password policy: one function, `check_password`, used wherever a password is chosen.

Sign-up (`UserCreate`), a password change through `PATCH /users/{username}` (`UserUpdate`, and
the service again with the stored username and email) and `app create-superuser` all call it.
Each broken rule raises `PasswordPolicyError`, a `ValueError` whose message names the rule
("password: must not contain the username") and never contains the password.

The rules, checked in this order (the first one broken is reported):

1. length: `PASSWORD_MIN_LENGTH` to `PASSWORD_MAX_LENGTH` characters;
2. no white space at the start or the end (a pasted password often carries some);
3. it does not contain the username, nor the local part of the email address (the part before
   the @), compared case-insensitively; a part shorter than 3 characters is not looked for;
4. it is not one of zxcvbn's 30,000 most common passwords from breach corpora, also when
   capitalised, reversed or with l33t substitutions ("P@ssw0rd"): "too common";
5. zxcvbn scores it at least 3 of 4, i.e. it estimates at least 10^8 guesses, "safely
   unguessable" against an online attack and moderate protection against an offline attack
   on a slow hash (argon2id here): "too easy to guess". The username, the email address, its
   local part and the words of the name are given to zxcvbn as user inputs, so "Quenby2019!"
   is refused for Marigold Quenby (and accepted for others). Rule 4 is the usual reason for
   rule 5; it is checked on its own (when the whole password is within what zxcvbn sees) so
   that the message says "too common" when that is why.

No composition rule: the former "mix letters with digits or symbols" rule is dropped. It
refused strong passphrases ("correcthorsebatterystaple" scores 4) and accepted predictable
ones ("Password1!" scores 1), which rules 4 and 5 refuse; NIST SP 800-63B advises a blocklist
and no composition rules for the same reason.

CPU cost: this runs on the event loop (inside a pydantic validator), so it is bounded. Only the
first `ESTIMATE_MAX_CHARS` characters go to zxcvbn (rules 1 to 3 see the whole password): a
password whose first 32 characters are guessable is refused, whatever follows. zxcvbn's l33t
matcher tries every substitution map the password's symbols allow, up to 736 of them, each a
full dictionary scan; it is capped here at `_L33T_MAX_SUBS` maps over the first
`_L33T_MAX_LETTERS` letters, which covers ordinary passwords in full (they allow 1 to 3 maps).
Measured with zxcvbn 4.5.0 on the project's 2-core machine (Python 3.11), one call: median
1 ms for ordinary passwords (8 to 30 characters); 4 to 7 ms at worst, for 128 adversarial
characters (every l33t symbol, random digits, one repeated pattern, dates), since zxcvbn sees
32 of them. Without the cap, 32 l33t symbols took 0.45 s and 100 took 4 s; with the cap but
100 characters, the worst cases took 40 to 90 ms, hence 32. Importing
zxcvbn costs about 50 ms and 11 MB of memory per process, once.
"""

from __future__ import annotations

import functools
import itertools
import re
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from zxcvbn import matching, zxcvbn

from src.infrastructure.config import settings
from src.modules.common.exceptions import InvalidValueError

if TYPE_CHECKING:  # the stubs' names for zxcvbn's result and its matches
    from zxcvbn import _Result
    from zxcvbn.matching import _Match

ESTIMATE_MAX_CHARS = 32
MIN_SCORE = 3
MIN_PART_LENGTH = 3

_L33T_MAX_LETTERS = 5
_L33T_MAX_SUBS = 8
_WORD_SPLIT = re.compile(r"[\W_]+")
# zxcvbn keeps the user inputs of the call in progress in a module global: one call at a time.
_zxcvbn_lock = threading.Lock()


class PasswordPolicyError(ValueError):
    """A password broke a rule. `rule` is a stable code, `str(error)` the message to show."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"password: {message}")
        self.rule = rule


def check_password(
    password: str,
    *,
    username: str | None = None,
    email: str | None = None,
    name: str | None = None,
) -> None:
    """Raise `PasswordPolicyError` (a `ValueError`) naming the first rule `password` breaks.

    `username`, `email` and `name` are the account's, new or stored: rule 3 and zxcvbn's user
    inputs use them. Cheap enough for the event loop (a few ms, see the module docstring)."""
    if len(password) < settings.PASSWORD_MIN_LENGTH:
        raise PasswordPolicyError(
            "too_short", f"must be at least {settings.PASSWORD_MIN_LENGTH} characters long"
        )
    if len(password) > settings.PASSWORD_MAX_LENGTH:
        raise PasswordPolicyError(
            "too_long", f"must be at most {settings.PASSWORD_MAX_LENGTH} characters long"
        )
    if password.strip() != password:
        raise PasswordPolicyError("white_space", "must not start or end with white space")

    folded = password.casefold()
    local_part = email.rpartition("@")[0] if email else ""
    if username and len(username) >= MIN_PART_LENGTH and username.casefold() in folded:
        raise PasswordPolicyError("contains_username", "must not contain the username")
    if len(local_part) >= MIN_PART_LENGTH and local_part.casefold() in folded:
        raise PasswordPolicyError(
            "contains_email", "must not contain the email address (its part before the @)"
        )

    estimate = _estimate(password[:ESTIMATE_MAX_CHARS], _user_inputs(username, email, name))
    if len(password) <= ESTIMATE_MAX_CHARS and _is_one_common_password(estimate["sequence"]):
        raise PasswordPolicyError(
            "too_common", "too common (found in a list of breached passwords)"
        )
    if estimate["score"] < MIN_SCORE:
        raise PasswordPolicyError("too_weak", f"too easy to guess ({_why_weak(estimate)})")


def enforce_password_policy(
    password: str,
    *,
    field: str = "password",
    username: str | None = None,
    email: str | None = None,
    name: str | None = None,
) -> None:
    """`check_password` for services: a broken rule is an `InvalidValueError`, answered as a
    422 of `field` shaped like the schemas' own validation errors."""
    try:
        check_password(password, username=username, email=email, name=name)
    except PasswordPolicyError as exc:
        raise InvalidValueError(str(exc), field=field, error_type="password_policy") from None


def _user_inputs(username: str | None, email: str | None, name: str | None) -> list[str]:
    """What zxcvbn should treat as known to an attacker: the values and their words."""
    local_part = email.rpartition("@")[0] if email else ""
    values = [value for value in (username, email, local_part, name) if value]
    words = _WORD_SPLIT.split(" ".join(filter(None, (username, local_part, name))))
    inputs = values + [word for word in words if len(word) >= MIN_PART_LENGTH]
    return list(dict.fromkeys(value.casefold() for value in inputs))


def _estimate(password: str, user_inputs: list[str]) -> _Result:
    with _zxcvbn_lock:
        try:
            result = zxcvbn(password, user_inputs=user_inputs)
        finally:
            matching.RANKED_DICTIONARIES["user_inputs"] = {}  # keep no account data around
    return result


def _is_one_common_password(sequence: list[_Match]) -> bool:
    """The whole password is one entry of the common-passwords list (any case, reversed or
    l33t), as opposed to containing one ("horse" in a passphrase is fine)."""
    return (
        len(sequence) == 1
        and sequence[0]["pattern"] == "dictionary"
        and sequence[0].get("dictionary_name") == "passwords"
    )


def _why_weak(estimate: _Result) -> str:
    if any(match.get("dictionary_name") == "user_inputs" for match in estimate["sequence"]):
        return "it is built on your name, username or email address"
    warning = estimate["feedback"]["warning"].rstrip(".")
    if warning:
        return warning[0].lower() + warning[1:]
    return "add another word or two; uncommon words are better"


def _bound_l33t_matching() -> None:
    """Cap zxcvbn's substitution maps at `_L33T_MAX_SUBS`, over the first `_L33T_MAX_LETTERS`
    letters: unbounded, a password of l33t symbols costs seconds (see the module docstring).

    zxcvbn's matchers look the function up in their module on every call (the l33t matcher,
    and the repeat matcher that matches the repeated part again), so this bounds all of them.
    Wrapping the original (`__wrapped__`) keeps a second import from wrapping the wrapper."""
    original = getattr(matching.enumerate_l33t_subs, "__wrapped__", matching.enumerate_l33t_subs)

    @functools.wraps(original)
    def bounded(table: Mapping[str, Iterable[str]]) -> list[dict[str, str]]:
        letters = dict(itertools.islice(table.items(), _L33T_MAX_LETTERS))
        return original(letters)[:_L33T_MAX_SUBS]

    matching.enumerate_l33t_subs = bounded


_bound_l33t_matching()
