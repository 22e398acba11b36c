"""The OpenADR MQTT notifier's topic names and broker roles (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from vpp.broker_roles import dynamic_security_config, openadr_security_config
from vpp.broker_security import ServiceAccounts, hash_password
from vpp.domain.openadr_mqtt import bl_topics, client_filter, operation_topics, ven_base, ven_topics

SERVICES = ServiceAccounts("ingest", "scheduler", "")


def _config(clients: dict[str, str], *, vtn: bool = True, sites: tuple[str, ...] = ("depot-a",)) -> dict[str, Any]:
    base = dynamic_security_config(
        {s: hash_password(f"secret-{s}") for s in sites},
        SERVICES,
        {name: hash_password(f"secret-{name}") for name in SERVICES.usernames},
    )
    accounts = {client_id: (role, hash_password(f"secret-{client_id}")) for client_id, role in clients.items()}
    vtn_accounts = {name: hash_password("vtn-secret") for name in ("openadr-vtn", "openadr-vtn-2")} if vtn else {}
    body: dict[str, Any] = json.loads(openadr_security_config(base, accounts, vtn_accounts))
    return body


def _grants(config: dict[str, Any], username: str) -> set[tuple[str, str]]:
    client = next(c for c in config["clients"] if c["username"] == username)
    names = {r["rolename"] for r in client["roles"]}
    return {(a["acltype"], a["topic"]) for r in config["roles"] if r["rolename"] in names for a in r["acls"]}


def test_a_ven_reads_only_its_own_client_topics_and_publishes_nothing() -> None:
    config = _config({"ven-depot-a": "ven", "ven-office-b": "ven", "utility-bl": "bl"})
    assert _grants(config, "ven-depot-a") == {
        ("subscribePattern", "openadr3/clients/ven-depot-a/#"),
        ("publishClientReceive", "openadr3/clients/ven-depot-a/#"),
    }
    assert _grants(config, "utility-bl") == {
        ("subscribePattern", "openadr3/#"),
        ("publishClientReceive", "openadr3/#"),
    }
    assert _grants(config, "openadr-vtn") == {("publishClientSend", "openadr3/#")}
    assert _grants(config, "openadr-vtn-2") == {("publishClientSend", "openadr3/#")}
    # The site and service accounts are untouched, and nothing is granted by default.
    assert _grants(config, "depot-a") == _grants(_config({}), "depot-a")
    assert config["defaultACLAccess"]["subscribe"] is False


def test_every_topic_a_ven_is_sent_is_under_its_own_filter_and_no_other_vens() -> None:
    for object_type in ("EVENT", "PROGRAM", "RESOURCE", "VEN"):
        for operation in ("CREATE", "UPDATE", "DELETE"):
            for topic in ven_topics(object_type, operation, "ven-depot-a", "ven-1"):
                assert topic.startswith("openadr3/clients/ven-depot-a/")
                assert not topic.startswith(client_filter("ven-depot-a2")[:-1])
    assert ven_topics("REPORT", "CREATE", "ven-depot-a", "ven-1") == []
    assert ven_topics("VEN", "CREATE", "ven-depot-a", "ven-1") == []


def test_business_logic_topics_follow_the_spec_layout() -> None:
    assert bl_topics("EVENT", "UPDATE", "e1", "p1") == ["openadr3/events/update", "openadr3/programs/p1/events/update"]
    assert bl_topics("PROGRAM", "CREATE", "p1", None) == ["openadr3/programs/create"]
    assert bl_topics("PROGRAM", "DELETE", "p1", None) == ["openadr3/programs/delete", "openadr3/programs/p1/delete"]
    assert operation_topics(ven_base("c", "v"), with_create=False) == {
        "UPDATE": "openadr3/clients/c/vens/v/update",
        "DELETE": "openadr3/clients/c/vens/v/delete",
        "ALL": "openadr3/clients/c/vens/v/+",
    }


@pytest.mark.parametrize("name", ["depot-a", "ingest", "openadr-vtn"])
def test_a_client_named_like_another_account_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="already"):
        _config({name: "ven"})


@pytest.mark.parametrize("bad", ["a/b", "+", "#", ""])
def test_ids_that_are_not_one_topic_level_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="topic level"):
        ven_base("ven-depot-a", bad)
