"""Mosquitto password and ACL generation (pure): formats checked against Mosquitto's own output."""

from __future__ import annotations

import pytest

from vpp.broker_security import (
    PasswordHash,
    ServiceAccounts,
    acl_file,
    hash_password,
    new_site_secret,
    parse_password_line,
    password_file,
    password_file_line,
    verify_password,
)

# Written by Mosquitto 2.0.11's `mosquitto_passwd -b pw alice secret123`.
MOSQUITTO_LINE = "alice:$7$101$n0G9zbg/Tf/nwAxX$F7h/SDAicDrJQm/0uCKkn37ZM4fTcieuvo8c3paYCGl7xcqtkTpmLe7D7FxuWR52YyjsH/ERp1gm+DwfyMGM8A=="
SERVICES = ServiceAccounts("ingest", "scheduler", "ingest")


def _acl_blocks(text: str) -> dict[str, list[str]]:
    blocks: dict[str, list[str]] = {}
    user = None
    for line in text.splitlines():
        if line.startswith("user "):
            user = line.removeprefix("user ")
            blocks[user] = []
        elif line.startswith("topic "):
            assert user is not None, "a topic line before any user line would apply to anonymous clients"
            blocks[user].append(line.removeprefix("topic "))
    return blocks


def test_hash_with_mosquittos_salt_reproduces_mosquitto_passwd_output() -> None:
    username, stored = parse_password_line(MOSQUITTO_LINE)
    again = hash_password("secret123", salt=stored.salt, iterations=stored.iterations)
    assert password_file_line(username, again) == MOSQUITTO_LINE
    assert verify_password("secret123", stored)
    assert not verify_password("secret124", stored)


def test_fresh_hashes_are_salted_and_in_mosquittos_format() -> None:
    a, b = hash_password("same"), hash_password("same")
    assert a.salt != b.salt
    assert a.digest != b.digest
    line = password_file_line("site-a", a)
    assert line.startswith("site-a:$7$101$")
    assert parse_password_line(line) == ("site-a", a)


@pytest.mark.parametrize(("salt", "digest"), [(b"short", bytes(64)), (bytes(12), bytes(32))], ids=["salt", "digest"])
def test_password_hash_rejects_sizes_mosquitto_would_not_accept(salt: bytes, digest: bytes) -> None:
    with pytest.raises(ValueError, match="12-byte salt"):
        PasswordHash(101, salt, digest)


def test_parse_refuses_other_hash_formats() -> None:
    with pytest.raises(ValueError, match="sha512-pbkdf2"):
        parse_password_line("bob:$6$c2FsdA==$aGFzaA==")


def test_empty_password_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        hash_password("")


def test_site_secrets_are_long_and_distinct() -> None:
    secrets = {new_site_secret() for _ in range(100)}
    assert len(secrets) == 100
    assert all(len(s) >= 43 for s in secrets)


def test_password_file_is_sorted_and_rejects_unsafe_usernames() -> None:
    text = password_file({"b": hash_password("x"), "a": hash_password("y")})
    assert [line.split(":")[0] for line in text.splitlines()] == ["a", "b"]
    assert password_file({}) == ""
    with pytest.raises(ValueError, match="username"):
        password_file({"evil:user": hash_password("x")})


def test_each_site_may_write_only_under_its_own_prefix_and_read_only_its_own_signal() -> None:
    blocks = _acl_blocks(acl_file(["site-b", "site-a"], SERVICES))
    assert blocks["site-a"] == [
        "write vpp/v1/site-a/+/telemetry",
        "write vpp/v1/site-a/status",
        "write vpp/v1/site-a/dr/ack",
        "read vpp/v1/site-a/dr/signal",
        "read vpp/v1/site-a/stored",  # the end-to-end confirmation of its own readings only
    ]
    for site, grants in blocks.items():
        if site in SERVICES.usernames:
            continue
        assert all(g.split(" ", 1)[1].startswith(f"vpp/v1/{site}/") for g in grants)
        assert not any("#" in g for g in grants)


def test_service_accounts_get_what_their_roles_need() -> None:
    blocks = _acl_blocks(acl_file([], ServiceAccounts("ingest-svc", "sched-svc", "workers")))
    assert blocks["ingest-svc"] == [
        "read $share/workers/vpp/v1/+/+/telemetry",
        "read vpp/v1/+/+/telemetry",
        "read vpp/v1/+/status",
        "read vpp/v1",
        "read vpp/v1/+",
        "read vpp/v1/+/telemetry",
        "read vpp/v1/+/+/+/+/#",
        "write vpp/v1/+/stored",
    ]
    # Without a share group (the default) ingest holds plain subscriptions only.
    plain = _acl_blocks(acl_file([], ServiceAccounts("ingest-svc", "sched-svc", "")))["ingest-svc"]
    assert not any("$share" in g for g in plain)
    assert "read vpp/v1/+/+/telemetry" in plain
    assert blocks["sched-svc"] == [
        "readwrite vpp/v1/+/dr/signal",
        "read vpp/v1/+/dr/ack",
        "read vpp/v1/+/+/telemetry",
        "read vpp/v1/+/status",
    ]
    # Ingest writes nothing but the confirmation.
    writes = [g for g in blocks["ingest-svc"] if g.startswith(("write", "readwrite"))]
    assert writes == ["write vpp/v1/+/stored"]


@pytest.mark.parametrize("site_id", ["ingest", "scheduler"])
def test_site_named_like_a_service_account_is_refused(site_id: str) -> None:
    with pytest.raises(ValueError, match="collides"):
        acl_file([site_id], SERVICES)


@pytest.mark.parametrize("site_id", ["Site-A", "a/b", "+", "#", "", "a b"])
def test_site_ids_that_could_widen_a_topic_are_refused(site_id: str) -> None:
    with pytest.raises(ValueError, match="site id"):
        acl_file([site_id], SERVICES)


def test_service_accounts_validate_their_names() -> None:
    with pytest.raises(ValueError, match="different"):
        ServiceAccounts("svc", "svc")
    with pytest.raises(ValueError, match="username"):
        ServiceAccounts("in gest", "scheduler")
    with pytest.raises(ValueError, match="group"):
        ServiceAccounts("ingest", "scheduler", "a/b")
