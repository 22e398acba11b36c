"""The dynamic-security roles (pure): what each account may publish, subscribe to and receive."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from vpp.broker_roles import (
    MAX_PACKET_BYTES,
    PLATFORM_TO_SITE,
    broker_security_lines,
    dynamic_security_config,
    site_topics,
)
from vpp.broker_security import PasswordHash, ServiceAccounts, hash_password, verify_password

SERVICES = ServiceAccounts("ingest", "scheduler", "ingest", ("ingest-2",))


def _config(*site_ids: str) -> dict[str, Any]:
    sites = {site_id: hash_password(f"secret-{site_id}") for site_id in site_ids}
    services = {name: hash_password(f"secret-{name}") for name in SERVICES.usernames}
    body: dict[str, Any] = json.loads(dynamic_security_config(sites, SERVICES, services))
    return body


def _acls(config: dict[str, Any], rolename: str) -> set[tuple[str, str]]:
    role = next(r for r in config["roles"] if r["rolename"] == rolename)
    assert all(acl["allow"] for acl in role["acls"])
    return {(acl["acltype"], acl["topic"]) for acl in role["acls"]}


def test_nothing_is_granted_by_default() -> None:
    default = _config("site-a")["defaultACLAccess"]
    assert default == {
        "publishClientSend": False,
        "publishClientReceive": False,
        "subscribe": False,
        "unsubscribe": True,
    }


def test_a_site_writes_and_reads_only_under_its_own_prefix() -> None:
    acls = _acls(_config("site-a", "site-b"), "site:site-a")
    assert acls == {
        ("publishClientSend", "vpp/v1/site-a/+/telemetry"),
        ("publishClientSend", "vpp/v1/site-a/status"),
        ("publishClientSend", "vpp/v1/site-a/dr/ack"),
        ("subscribePattern", "vpp/v1/site-a/#"),
        *(("publishClientReceive", topic) for topic in site_topics("site-a", PLATFORM_TO_SITE)),
    }
    assert all("$" not in topic and "site-b" not in topic for _, topic in acls)


def test_every_ingest_account_gets_the_ingest_role_and_its_password() -> None:
    config = _config("site-a")
    clients = {c["username"]: c for c in config["clients"]}
    assert set(clients) == {"ingest", "ingest-2", "scheduler", "site-a"}
    assert [r["rolename"] for r in clients["ingest-2"]["roles"]] == ["ingest"]
    assert ("subscribePattern", "$share/ingest/vpp/v1/+/+/telemetry") in _acls(config, "ingest")
    assert ("publishClientSend", "vpp/v1/+/dr/signal") in _acls(config, "dr-scheduler")
    assert ("subscribePattern", "vpp/v1/+/dr/signal") in _acls(config, "dr-scheduler")  # reads it back
    site = clients["site-a"]
    stored = PasswordHash(site["iterations"], base64.b64decode(site["salt"]), base64.b64decode(site["password"]))
    assert verify_password("secret-site-a", stored)


def test_a_site_named_like_a_service_account_is_refused() -> None:
    with pytest.raises(ValueError, match="collides"):
        _config("ingest-2")


def test_broker_lines_bind_client_ids_and_limit_packets() -> None:
    lines = broker_security_lines("/x/plugin.so", "/auth/dynamic-security.json")
    assert "use_username_as_clientid true" in lines
    assert "allow_anonymous false" in lines
    assert f"max_packet_size {MAX_PACKET_BYTES}" in lines
    assert "plugin_opt_config_file /auth/dynamic-security.json" in lines
