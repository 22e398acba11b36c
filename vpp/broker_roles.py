"""Who may do what on the broker: the roles of the v1 topic scheme, as Mosquitto's dynamic-security
configuration and broker settings (pure: callers pass accounts and stored hashes, get text back).

Why the dynamic-security plugin and not Mosquitto's ``acl_file``: Mosquitto 2.0's ``acl_file`` checks
subscriptions not at all (it grants every SUBSCRIBE and filters deliveries later). A site could then
join ingest's shared subscription ``$share/ingest/...``: the broker hands it its round-robin share of
every site's telemetry and drops it on the read check, so ingest never sees those messages. The
plugin refuses such a subscription at SUBACK (0x87) instead.

Why ``use_username_as_clientid``: without it a client id is anyone's to take, and connecting with
ingest's or the scheduler's id kicks that client off and inherits its session. With it the broker
replaces whatever id a client sends by its username, so each account has exactly one session. The
consequences: one connection per account (each ingest worker has its own account; a site keeps
working with its credentials whatever client id it sends, but two connections with the same site
credentials replace each other).

A site's rights are the topics under its own prefix ``vpp/v1/{site_id}/``: it publishes
`SITE_TO_PLATFORM` (a Last Will or a retained message is a publication, checked the same way) and
reads `PLATFORM_TO_SITE`. It may subscribe to any filter under its own prefix (older gateways use
``vpp/v1/{site}/#``) but is delivered only what `PLATFORM_TO_SITE` lists; anything else, ``$share``
and ``$SYS`` included, is refused at SUBACK.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vpp.broker_security import PasswordHash, ServiceAccounts, check_site_ids
from vpp.domain.openadr_mqtt import PREFIX as OPENADR_PREFIX
from vpp.domain.openadr_mqtt import client_filter as openadr_client_filter
from vpp.mqtt import MISFIT_FILTERS, STORED_TOPIC

__all__ = [
    "MAX_PACKET_BYTES",
    "PLATFORM_TO_SITE",
    "SITE_TO_PLATFORM",
    "broker_security_lines",
    "dynamic_security_config",
    "dynamic_security_plugin",
    "openadr_security_config",
    "site_topics",
]

# Topic patterns below a site's own prefix `vpp/v1/{site_id}/`. Adding a platform → site topic is one line.
SITE_TO_PLATFORM: tuple[str, ...] = ("+/telemetry", "status", "dr/ack")
PLATFORM_TO_SITE: tuple[str, ...] = ("dr/signal", "stored")  # stored: end-to-end confirmation (vpp.mqtt)

# Largest MQTT packet the broker accepts: ingest's own payload limit (256 KiB, dead-lettered as
# `oversized` above it) plus room for the topic and properties, so an oversized reading still reaches
# the dead-letter table with its reason, while a megabyte payload never reaches the broker's memory.
MAX_PACKET_BYTES = 320 * 1024

_PLUGIN = "mosquitto_dynamic_security.so"
# Where packages put it: Debian in the multiarch folder (/usr/lib/x86_64-linux-gnu/), the
# eclipse-mosquitto image and Alpine in /usr/lib/, Fedora in /usr/lib64/, a source build in
# /usr/local/lib/, Homebrew under its prefix. One level of subfolders covers every multiarch triplet.
_PLUGIN_DIRS = ("/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/lib/mosquitto", "/opt/homebrew/lib")


def site_topics(site_id: str, patterns: tuple[str, ...]) -> list[str]:
    return [f"vpp/v1/{site_id}/{pattern}" for pattern in patterns]


def dynamic_security_plugin() -> str | None:
    """Where this machine's Mosquitto keeps the dynamic-security plugin, if it has one."""
    for folder in map(Path, _PLUGIN_DIRS):
        for candidate in [folder / _PLUGIN, *sorted(folder.glob(f"*/{_PLUGIN}"))]:
            if candidate.is_file():
                return str(candidate)
    return None


def broker_security_lines(plugin_path: str, config_path: str) -> list[str]:
    """The mosquitto.conf lines that enforce these roles. All are global except
    ``use_username_as_clientid``, a listener setting in Mosquitto 2.0 (before any `listener` line it
    opens a default listener on 1883): put these lines after the listener, and repeat that one line
    after every further listener."""
    return [
        "per_listener_settings false",
        "allow_anonymous false",
        "use_username_as_clientid true",
        f"max_packet_size {MAX_PACKET_BYTES}",
        f"message_size_limit {MAX_PACKET_BYTES}",
        f"plugin {plugin_path}",
        f"plugin_opt_config_file {config_path}",
    ]


def _acl(kind: str, topic: str, allow: bool = True) -> dict[str, Any]:
    return {"acltype": kind, "topic": topic, "priority": 0, "allow": allow}


def _reads(*topics: str) -> list[dict[str, Any]]:
    return [acl for t in topics for acl in (_acl("subscribePattern", t), _acl("publishClientReceive", t))]


def _writes(*topics: str) -> list[dict[str, Any]]:
    return [_acl("publishClientSend", t) for t in topics]


def _client(username: str, stored: PasswordHash, role: str) -> dict[str, Any]:
    return {
        "username": username,
        "password": base64.b64encode(stored.digest).decode("ascii"),
        "salt": base64.b64encode(stored.salt).decode("ascii"),
        "iterations": stored.iterations,
        "roles": [{"rolename": role, "priority": 0}],
    }


def dynamic_security_config(
    site_hashes: Mapping[str, PasswordHash],
    services: ServiceAccounts,
    service_hashes: Mapping[str, PasswordHash],
) -> str:
    """The plugin's JSON file: one client per account, a role per site, nothing granted by default."""
    check_site_ids(site_hashes, services)
    group = services.ingest_share_group
    telemetry, status, acks = "vpp/v1/+/+/telemetry", "vpp/v1/+/status", "vpp/v1/+/dr/ack"
    roles: list[dict[str, Any]] = [
        {
            "rolename": "ingest",
            # Mosquitto 2.0.11 checks a shared subscription's deliveries against the plain topic.
            "acls": [
                *([_acl("subscribePattern", f"$share/{group}/{telemetry}")] if group else []),
                *_reads(telemetry, status),
                # misfit topics are kept as dead letters; the confirmation goes to every site
                *_reads(*MISFIT_FILTERS),
                *_writes(STORED_TOPIC.format(site_id="+")),
            ],
        },
        {
            "rolename": "dr-scheduler",
            # It reads the retained signals back to put a restarted broker's right (README "Broker redundancy").
            "acls": [*_writes("vpp/v1/+/dr/signal"), *_reads(acks, telemetry, status, "vpp/v1/+/dr/signal")],
        },
    ]
    clients = [_client(name, service_hashes[name], "ingest") for name in sorted(services.ingest_usernames)]
    clients.append(_client(services.scheduler_username, service_hashes[services.scheduler_username], "dr-scheduler"))
    for site_id in sorted(site_hashes):
        role = f"site:{site_id}"
        roles.append(
            {
                "rolename": role,
                "acls": [
                    *_writes(*site_topics(site_id, SITE_TO_PLATFORM)),
                    _acl("subscribePattern", f"vpp/v1/{site_id}/#"),
                    *[_acl("publishClientReceive", t) for t in site_topics(site_id, PLATFORM_TO_SITE)],
                ],
            }
        )
        clients.append(_client(site_id, site_hashes[site_id], role))
    body = {
        "defaultACLAccess": {
            "publishClientSend": False,
            "publishClientReceive": False,
            "subscribe": False,
            "unsubscribe": True,
        },
        "clients": clients,
        "groups": [],
        "roles": roles,
    }
    return json.dumps(body, indent=2) + "\n"


# --- OpenADR MQTT notifier binding (services/api/openadr/mqtt_notifier.py) ---------------------------
# Kept apart from the site and service roles above: it only adds roles and clients to their file.


def openadr_security_config(
    base_config: str,
    clients: Mapping[str, tuple[str, PasswordHash]],
    vtn_accounts: Mapping[str, PasswordHash],
) -> str:
    """`base_config` (from `dynamic_security_config`) plus the OpenADR notifier's broker accounts.

    `clients`: OpenADR client ID -> (role ``bl`` or ``ven``, stored hash); each becomes a broker
    client of that username. A VEN reads only ``openadr3/clients/{its clientID}/#`` (its own ven
    objects' topics: the events and programs it may read and its own objects), so no VEN can read
    another's; business logic reads everything under ``openadr3/``. Neither may publish there: only
    `vtn_accounts`, the API processes' publishers (one username each), may. A name that is already a site's or a service account's
    username is refused, as the site ids are (one username, one set of rights).
    """
    body = json.loads(base_config)
    taken = {c["username"] for c in body["clients"]}
    roles: list[dict[str, Any]] = body["roles"]
    new_clients: list[dict[str, Any]] = []
    if vtn_accounts:
        roles.append({"rolename": "openadr-vtn", "acls": _writes(f"{OPENADR_PREFIX}/#")})
        new_clients += [_client(username, vtn_accounts[username], "openadr-vtn") for username in sorted(vtn_accounts)]
    if any(role == "bl" for role, _ in clients.values()):
        roles.append({"rolename": "openadr-bl", "acls": _reads(f"{OPENADR_PREFIX}/#")})
    for client_id in sorted(clients):
        role, stored = clients[client_id]
        if role == "bl":
            new_clients.append(_client(client_id, stored, "openadr-bl"))
        elif role == "ven":
            rolename = f"openadr-ven:{client_id}"
            roles.append({"rolename": rolename, "acls": _reads(openadr_client_filter(client_id))})
            new_clients.append(_client(client_id, stored, rolename))
        else:
            raise ValueError(f"OpenADR client {client_id!r} has no broker role for {role!r}")
    for client in new_clients:
        if client["username"] in taken:
            raise ValueError(
                f"OpenADR broker username {client['username']!r} is already a site's or a service account's"
            )
        taken.add(client["username"])
    body["clients"] = [*body["clients"], *new_clients]
    return json.dumps(body, indent=2) + "\n"
