"""The OpenADR 3.1 MQTT notifier binding's topic names (pure: no I/O).

The VTN publishes each notification (the webhook's ``{objectType, operation, object}``) to topics
named here, and ``GET /notifiers/mqtt/topics/...`` hands the same names out. Two families:

- Business-logic topics, under ``openadr3/`` (``programs/create``, ``programs/{programID}/events/update``,
  ``events/delete``, ``reports/+`` ...): every object, targets in full. Only business logic may read them.
- VEN topics, under ``openadr3/clients/{clientID}/vens/{venID}/``: the VEN's own ven object, its
  resources, and the programs and events that client may read, as it reads them (targets it was not
  granted hidden). The clientID level is what lets the broker keep VENs apart with one static rule
  per client (read ``openadr3/clients/{clientID}/#``, nothing else), whatever ven objects the client
  creates later, and a ven object moved to another client moves to that client's topics.

Client IDs (``^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$``, the clients table's CHECK) and object IDs
(``^[a-zA-Z0-9_-]{1,128}$``) contain no ``/``, ``+`` or ``#``, so each is exactly one topic level.
"""

from __future__ import annotations

import re

__all__ = [
    "OPERATIONS",
    "PREFIX",
    "bl_topics",
    "client_filter",
    "collection_base",
    "operation_topics",
    "program_base",
    "ven_base",
    "ven_topics",
]

PREFIX = "openadr3"
OPERATIONS = ("CREATE", "UPDATE", "DELETE")
_LEVEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$|^[A-Za-z0-9_-]{1,128}$")
_COLLECTIONS = {
    "PROGRAM": "programs",
    "EVENT": "events",
    "REPORT": "reports",
    "SUBSCRIPTION": "subscriptions",
    "VEN": "vens",
    "RESOURCE": "resources",
}


def _level(value: str) -> str:
    if not _LEVEL.match(value):
        raise ValueError(f"not usable as an MQTT topic level: {value!r}")
    return value


def operation_topics(base: str, *, with_create: bool = True) -> dict[str, str]:
    """The spec's ``notifierOperationsTopics`` for topics under `base`: one per operation, and ALL.

    Without CREATE for one object's own topics (the spec: nobody can ask to hear of the creation of
    an object that does not exist yet)."""
    topics = {op: f"{base}/{op.lower()}" for op in OPERATIONS if with_create or op != "CREATE"}
    topics["ALL"] = f"{base}/+"
    return topics


def collection_base(object_type: str) -> str:
    return f"{PREFIX}/{_COLLECTIONS[object_type]}"


def program_base(program_id: str) -> str:
    return f"{PREFIX}/programs/{_level(program_id)}"


def ven_base(client_id: str, ven_id: str) -> str:
    return f"{PREFIX}/clients/{_level(client_id)}/vens/{_level(ven_id)}"


def client_filter(client_id: str) -> str:
    """Everything a VEN client may read on the broker."""
    return f"{PREFIX}/clients/{_level(client_id)}/#"


def bl_topics(object_type: str, operation: str, object_id: str, program_id: str | None) -> list[str]:
    """Where business logic hears of `operation` on an object: its collection's topic, plus the
    program's own topics for a program (not its creation) and a program's events."""
    op = operation.lower()
    topics = [f"{collection_base(object_type)}/{op}"]
    if object_type == "PROGRAM" and operation != "CREATE":
        topics.append(f"{program_base(object_id)}/{op}")
    if object_type == "EVENT" and program_id:
        topics.append(f"{program_base(program_id)}/events/{op}")
    return topics


def ven_topics(object_type: str, operation: str, client_id: str, ven_id: str) -> list[str]:
    """Where the VEN client `client_id` hears of `operation` on an object through its ven `ven_id`:
    events and programs it may read, its resources, and the ven object itself (not its creation)."""
    op = operation.lower()
    base = ven_base(client_id, ven_id)
    if object_type == "VEN":
        return [] if operation == "CREATE" else [f"{base}/{op}"]
    if object_type in ("EVENT", "PROGRAM", "RESOURCE"):
        return [f"{base}/{_COLLECTIONS[object_type]}/{op}"]
    return []  # reports and subscriptions: business logic's topics only, as in the spec
