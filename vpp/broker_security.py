"""Mosquitto's password and ACL files for the v1 topic scheme (DESIGN.md section 3), as pure text.

Nothing here reads the database, the environment or the clock: callers pass the sites, the service
accounts and the stored password hashes, and get back file contents.

Passwords use Mosquitto 2's own format, ``user:$7$<iterations>$<base64 salt>$<base64 hash>``: PBKDF2
with HMAC-SHA512 over a 12-byte salt, a 64-byte derived key, standard base64 with padding
(``mosquitto_passwd -H sha512-pbkdf2``, Mosquitto's ``src/password_mosq.c``). 101 iterations is
Mosquitto's own default. Site secrets are 256-bit random tokens, for which key stretching adds
nothing, while every reconnect of every site pays for the iterations on the broker.

The ACL grants each account exactly what its role needs and nothing by pattern, so a site whose id
happened to equal a service account's name could not inherit that account's rights (and such ids are
refused outright).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from vpp.mqtt import MISFIT_FILTERS, STORED_TOPIC, stored_topic

__all__ = [
    "DEFAULT_ITERATIONS",
    "PasswordHash",
    "ServiceAccounts",
    "acl_file",
    "check_site_ids",
    "hash_password",
    "new_site_secret",
    "parse_password_line",
    "password_file",
    "password_file_line",
    "verify_password",
]

DEFAULT_ITERATIONS = 101
SALT_BYTES = 12
HASH_BYTES = 64

# The sites table's own CHECK; repeated here because these ids become topic levels and ACL lines.
_SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# Service account names go into `user <name>` lines and `<name>:` password entries.
_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SHARE_GROUP = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class PasswordHash:
    """One PBKDF2-HMAC-SHA512 password hash as Mosquitto stores it."""

    iterations: int
    salt: bytes
    digest: bytes

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ValueError("iterations must be at least 1")
        if len(self.salt) != SALT_BYTES or len(self.digest) != HASH_BYTES:
            raise ValueError(f"Mosquitto expects a {SALT_BYTES}-byte salt and a {HASH_BYTES}-byte hash")

    def encoded(self) -> str:
        salt = base64.b64encode(self.salt).decode("ascii")
        digest = base64.b64encode(self.digest).decode("ascii")
        return f"$7${self.iterations}${salt}${digest}"


@dataclass(frozen=True)
class ServiceAccounts:
    """The platform's own broker accounts and the shared-subscription group ingest joins."""

    ingest_username: str
    scheduler_username: str
    ingest_share_group: str = "ingest"
    # One account per further ingest worker (the secured broker binds a session to its username, so
    # two workers on one account would replace each other); all share the ingest password and role.
    extra_ingest_usernames: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in (*self.ingest_usernames, self.scheduler_username):
            _check_account(name)
        if self.scheduler_username in self.ingest_usernames:
            raise ValueError("the ingest and scheduler accounts must have different usernames")
        # Empty: ingest workers hold plain subscriptions (the default, see services/ingest/subscriber.py).
        if self.ingest_share_group and not _SHARE_GROUP.match(self.ingest_share_group):
            raise ValueError(f"not a usable shared-subscription group name: {self.ingest_share_group!r}")

    @property
    def ingest_usernames(self) -> frozenset[str]:
        return frozenset({self.ingest_username, *self.extra_ingest_usernames})

    @property
    def usernames(self) -> frozenset[str]:
        return frozenset({*self.ingest_usernames, self.scheduler_username})


def new_site_secret() -> str:
    """A fresh site password: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_password(password: str, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS) -> PasswordHash:
    """Hash `password` the way ``mosquitto_passwd`` does; a random salt unless one is given."""
    if not password:
        raise ValueError("refusing an empty password")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, HASH_BYTES)
    return PasswordHash(iterations, salt, digest)


def verify_password(password: str, stored: PasswordHash) -> bool:
    candidate = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), stored.salt, stored.iterations, HASH_BYTES)
    return hmac.compare_digest(candidate, stored.digest)


def password_file_line(username: str, stored: PasswordHash) -> str:
    _check_account(username)
    return f"{username}:{stored.encoded()}"


def parse_password_line(line: str) -> tuple[str, PasswordHash]:
    """Read one ``user:$7$...`` line (as ``mosquitto_passwd`` writes it)."""
    username, _, encoded = line.strip().partition(":")
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != "7":
        raise ValueError(f"not a Mosquitto sha512-pbkdf2 password line: {line.strip()[:40]!r}")
    return username, PasswordHash(int(parts[2]), base64.b64decode(parts[3]), base64.b64decode(parts[4]))


def password_file(accounts: Mapping[str, PasswordHash]) -> str:
    """The whole password file, sorted by username so regenerating it gives a reviewable diff."""
    lines = [password_file_line(username, accounts[username]) for username in sorted(accounts)]
    return "\n".join(lines) + "\n" if lines else ""


def acl_file(site_ids: Iterable[str], services: ServiceAccounts) -> str:
    """Mosquitto ACL: each site writes only its own telemetry, status and DR acks and reads only its
    own DR signal; ingest reads telemetry (shared) and status; the scheduler writes (and reads back) DR
    signals and reads acks, telemetry and status. Anything not granted is denied."""
    sites = check_site_ids(site_ids, services)
    group = services.ingest_share_group
    shared = [("read", f"$share/{group}/vpp/v1/+/+/telemetry")] if group else []
    blocks = [
        "# Generated by `vpp broker-config` from the sites table; do not edit by hand.\n"
        "# Reload after regenerating: kill -HUP <mosquitto pid>. Prefer dynamic-security.json (see\n"
        "# docs/runbook.md): this file cannot refuse a site's `$share/...` subscription.",
    ]
    blocks += [
        _block(
            ingest_username,
            "ingest: every site's telemetry through the shared subscription, and site status",
            # Mosquitto 2.0.11 checks a shared subscription's deliveries against the plain topic
            # (the next line); the `$share` line is for brokers that check the filter itself.
            [
                *shared,
                ("read", "vpp/v1/+/+/telemetry"),
                ("read", "vpp/v1/+/status"),
                # misfit topics, kept as dead letters (vpp.mqtt.MISFIT_FILTERS), and the end-to-end
                # confirmation to every site (vpp.mqtt.STORED_TOPIC)
                *(("read", f) for f in MISFIT_FILTERS),
                ("write", STORED_TOPIC.format(site_id="+")),
            ],
        )
        for ingest_username in sorted(services.ingest_usernames)
    ]
    blocks += [
        _block(
            services.scheduler_username,
            "dr_scheduler: publishes DR signals, reads acknowledgements, telemetry and status",
            [
                # read too: it compares every broker's retained signals with its own and republishes
                ("readwrite", "vpp/v1/+/dr/signal"),
                ("read", "vpp/v1/+/dr/ack"),
                ("read", "vpp/v1/+/+/telemetry"),
                ("read", "vpp/v1/+/status"),
            ],
        ),
    ]
    blocks += [
        _block(
            site_id,
            None,
            [
                ("write", f"vpp/v1/{site_id}/+/telemetry"),
                ("write", f"vpp/v1/{site_id}/status"),
                ("write", f"vpp/v1/{site_id}/dr/ack"),
                ("read", f"vpp/v1/{site_id}/dr/signal"),
                ("read", stored_topic(site_id)),
            ],
        )
        for site_id in sites
    ]
    return "\n\n".join(blocks) + "\n"


def check_site_ids(site_ids: Iterable[str], services: ServiceAccounts) -> list[str]:
    """The site ids, sorted; refuses ids that are not topic-safe or that name a service account."""
    sites = sorted(set(site_ids))
    for site_id in sites:
        if not _SITE_ID.match(site_id):
            raise ValueError(f"not a valid site id: {site_id!r}")
        if site_id in services.usernames:
            raise ValueError(f"site id {site_id!r} collides with a service account's username")
    return sites


def _block(username: str, comment: str | None, grants: list[tuple[str, str]]) -> str:
    lines = [f"# {comment}"] if comment else []
    lines.append(f"user {username}")
    lines += [f"topic {access} {topic}" for access, topic in grants]
    return "\n".join(lines)


def _check_account(username: str) -> None:
    if not _ACCOUNT.match(username):
        raise ValueError(f"not a usable broker username: {username!r}")
