"""The OpenADR MQTT notifier binding against a real Mosquitto enforcing `vpp broker-config`'s
dynamic-security file: discovery through ``/notifiers`` (every response validated against the 3.1.0
YAML), a VEN notified over MQTT of a scheduler event, its revision and its cancellation and of a
REST-created event, a second VEN refused on the first one's topics, and notifications queued while
the broker is down published once it is back."""

from __future__ import annotations

import json
import queue
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openadr3
import psycopg
import pytest
from fastapi import FastAPI
from paho.mqtt.reasoncodes import ReasonCode

from services.api.main import create_app
from services.cli.broker_cmd import DYNSEC_FILE, issue_and_render
from tests.integration.api.server import serving
from tests.integration.openadr.conftest import CLIENTS, bearer, fetch_token, validate_response, vtn_settings
from tests.integration.openadr.spec_validation import BASE_PATH
from tests.integration.openadr.vtn_setup import cancel_scheduler_event, scheduler_event
from tests.integration.security.conftest import NOT_AUTHORIZED, read_secrets, run_broker_config
from tests.support.servers import Server, fresh_database
from vpp.broker_security import ServiceAccounts
from vpp.embedded.broker import EmbeddedBroker
from vpp.mqtt import close_client, make_client
from vpp.postgres.migrate import upgrade
from vpp.postgres.openadr_clients import add_openadr_client, grant_ven_sites, revoke_openadr_client
from vpp.postgres.registry import SiteRecord, register_site

pytestmark = pytest.mark.integration

VTN_BROKER_PASSWORD = "openadr-vtn-broker-secret-for-tests"
START = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=2)
TIMEOUT_S = 15.0


class Subscriber:
    """A VEN's MQTT client, recording what the broker answers and delivers."""

    def __init__(self, port: int, username: str, password: str) -> None:
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.messages: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.client = make_client(username, username=username, password=password, reconnect_min_s=0.2)
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(rc)
        self.client.on_subscribe = lambda _c, _u, _mid, rcs, _p: self.subacks.put(list(rcs))
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, json.loads(m.payload)))
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        self.connect_result = self.connack.get(timeout=TIMEOUT_S)

    def subscribe(self, *topics: str) -> list[ReasonCode]:
        self.client.subscribe([(t, 1) for t in topics])
        return self.subacks.get(timeout=TIMEOUT_S)

    def next(self, timeout_s: float = TIMEOUT_S) -> tuple[str, dict[str, Any]]:
        return self.messages.get(timeout=timeout_s)

    def close(self) -> None:
        close_client(self.client)


@dataclass
class Env:
    db_url: str
    broker: EmbeddedBroker
    vtn: httpx.Client
    secrets: dict[str, str]
    ven_ids: dict[str, str]  # client ID -> its ven object's ID
    subscribers: list[Subscriber]
    app: FastAPI

    def subscriber(self, client_id: str) -> Subscriber:
        s = Subscriber(self.broker.port, client_id, self.secrets[client_id])
        assert not s.connect_result.is_failure, s.connect_result
        self.subscribers.append(s)
        return s

    def token(self, name: str) -> dict[str, str]:
        return bearer(fetch_token(self.vtn, CLIENTS[name]))


@contextmanager
def _broker_dir() -> Iterator[Path]:
    # Mosquitto, started as root, drops to its own user: keep its files out of pytest's 0700 tree.
    work = Path(tempfile.mkdtemp(prefix="vpp-oadr-mqtt-"))
    work.chmod(0o755)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def env(pg_server: Server) -> Iterator[Env]:
    if EmbeddedBroker.mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run `make deps`")
    with fresh_database(pg_server) as db_url, _broker_dir() as work, pytest.MonkeyPatch.context() as mp:
        upgrade(db_url)
        with psycopg.connect(db_url) as conn:
            for site_id in ("depot-a", "office-b"):
                register_site(conn, SiteRecord(site_id, site_id.title(), 35.6, 139.6), ())
            for client in CLIENTS.values():
                add_openadr_client(conn, client.client_id, client.secret, client.role, client.scopes)  # type: ignore[arg-type]
            now = datetime.now(UTC)
            ven_ids = {
                "ven-depot-a": grant_ven_sites(conn, "ven-depot-a", ["depot-a"], now)[0],
                "ven-office-b": grant_ven_sites(conn, "ven-office-b", ["office-b"], now)[0],
            }
            conn.commit()
        for name, value in {
            "VPP_ENVIRONMENT": "test",
            "VPP_DATABASE_URL": db_url,
            "VPP_MQTT_INGEST_PASSWORD": "ingest-secret-for-tests",
            "VPP_MQTT_SCHEDULER_PASSWORD": "scheduler-secret-for-tests",
            "VPP_MQTT_OPENADR_PASSWORD": VTN_BROKER_PASSWORD,
            "VPP_API_SIGNING_KEY": "api-signing-key-for-tests",
        }.items():
            mp.setenv(name, value)
        secrets = read_secrets(run_broker_config("--out-dir", str(work / "auth")))
        assert {"bl-operator", "ven-depot-a", "ven-office-b", "depot-a", "office-b"} <= set(secrets)
        broker = EmbeddedBroker(work / "broker", dynamic_security_file=work / "auth" / DYNSEC_FILE)
        broker.start()
        settings = vtn_settings(
            openadr_mqtt_url=f"mqtt://127.0.0.1:{broker.port}",
            mqtt_openadr_password=VTN_BROKER_PASSWORD,
            openadr_mqtt_first_delay_s=0.1,
            openadr_mqtt_max_delay_s=0.5,
            openadr_webhook_timeout_s=60,  # a webhook receiver may hold the outbox loop (see the last test)
        )
        subscribers: list[Subscriber] = []
        app = create_app(settings, database_url=db_url)
        try:
            with (
                serving(app) as url,
                httpx.Client(
                    base_url=url + BASE_PATH, timeout=30, event_hooks={"response": [validate_response]}
                ) as vtn,
            ):
                yield Env(db_url, broker, vtn, secrets, ven_ids, subscribers, app)
        finally:
            for s in subscribers:
                s.close()
            broker.stop()


def _topics(env: Env, path: str, who: str) -> dict[str, str]:
    response = env.vtn.get(f"/notifiers/mqtt/topics/{path}", headers=env.token(who))
    assert response.status_code == 200, response.text
    return dict(response.json()["topics"])


def _queued(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        changes = conn.execute("SELECT count(*) FROM openadr_changes").fetchone()[0]  # type: ignore[index]
        return int(changes) + int(conn.execute("SELECT count(*) FROM openadr_mqtt_messages").fetchone()[0])  # type: ignore[index]


def _mqtt_rows(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        return int(conn.execute("SELECT count(*) FROM openadr_mqtt_messages").fetchone()[0])  # type: ignore[index]


def _drained(db_url: str) -> None:
    """Wait until every change is fanned out and every MQTT message acknowledged by the broker."""
    deadline = time.monotonic() + TIMEOUT_S
    while _queued(db_url):
        assert time.monotonic() < deadline, "MQTT notifications still queued"
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def _close_subscribers(request: pytest.FixtureRequest) -> Iterator[None]:
    # One session per broker username: a test's subscribers must not fight the next test's.
    yield
    if "env" in request.fixturenames:
        subscribers = request.getfixturevalue("env").subscribers
        while subscribers:
            subscribers.pop().close()


def _quiet(subscriber: Subscriber) -> None:
    assert subscriber.messages.empty(), subscriber.messages.get_nowait()


def test_notifiers_names_the_broker_and_each_client_its_topics(env: Env) -> None:
    ven_a, ven_b = env.ven_ids["ven-depot-a"], env.ven_ids["ven-office-b"]
    base, token = str(env.vtn.base_url).rstrip("/"), fetch_token(env.vtn, CLIENTS["ven_a"])
    with openadr3.create_ven_client(base, token) as ven_client:
        ven_client._http.event_hooks["response"].append(validate_response)
        notifiers = ven_client.get_notifiers()
        assert notifiers.status_code == 200
        assert notifiers.json() == {
            "WEBHOOK": True,
            "MQTT": {
                "URIS": [f"mqtt://127.0.0.1:{env.broker.port}"],
                "serialization": "JSON",
                "authentication": {"method": "OAUTH2_BEARER_TOKEN", "username": "{clientID}"},
            },
        }
        assert ven_client.get_mqtt_topics_ven_events(ven_a).json()["topics"] == {
            "CREATE": f"openadr3/clients/ven-depot-a/vens/{ven_a}/events/create",
            "UPDATE": f"openadr3/clients/ven-depot-a/vens/{ven_a}/events/update",
            "DELETE": f"openadr3/clients/ven-depot-a/vens/{ven_a}/events/delete",
            "ALL": f"openadr3/clients/ven-depot-a/vens/{ven_a}/events/+",
        }
        assert ven_client.get_mqtt_topics_ven(ven_a).json()["topics"] == {
            "UPDATE": f"openadr3/clients/ven-depot-a/vens/{ven_a}/update",
            "DELETE": f"openadr3/clients/ven-depot-a/vens/{ven_a}/delete",
            "ALL": f"openadr3/clients/ven-depot-a/vens/{ven_a}/+",
        }
        for path in ("programs", "resources"):
            assert ven_client._request("GET", f"/notifiers/mqtt/topics/vens/{ven_a}/{path}").status_code == 200
        # Another VEN's ven is as invisible here as on GET /vens/{venID}; business logic's topics are refused.
        assert ven_client.get_mqtt_topics_ven_events(ven_b).status_code == 404
        assert ven_client.get_mqtt_topics_ven(ven_b).status_code == 404
        for refused in (
            ven_client.get_mqtt_topics_events,
            ven_client.get_mqtt_topics_reports,
            ven_client.get_mqtt_topics_subscriptions,
            ven_client.get_mqtt_topics_vens,
            ven_client.get_mqtt_topics_resources,
        ):
            assert refused().status_code == 403
        assert ven_client.get_mqtt_topics_programs().status_code == 404  # the YAML lists no 403 there

    # Business logic: every topic, a VEN's included.
    assert _topics(env, "events", "bl")["ALL"] == "openadr3/events/+"
    assert _topics(env, "programs", "bl")["CREATE"] == "openadr3/programs/create"
    for path in ("reports", "subscriptions", "vens", "resources"):
        assert _topics(env, path, "bl")["UPDATE"] == f"openadr3/{path}/update"
    assert _topics(env, f"vens/{ven_b}/events", "bl")["ALL"] == f"openadr3/clients/ven-office-b/vens/{ven_b}/events/+"
    bl = env.token("bl")
    assert env.vtn.get("/notifiers/mqtt/topics/programs/no-such-program", headers=bl).status_code == 404
    assert env.vtn.get("/notifiers/mqtt/topics/programs/bad%20id/events", headers=bl).status_code == 400
    program = env.vtn.post("/programs", json={"programName": "mqtt-topics-test"}, headers=bl).json()
    assert _topics(env, f"programs/{program['id']}", "bl") == {
        "UPDATE": f"openadr3/programs/{program['id']}/update",
        "DELETE": f"openadr3/programs/{program['id']}/delete",
        "ALL": f"openadr3/programs/{program['id']}/+",
    }
    assert _topics(env, f"programs/{program['id']}/events", "bl")["CREATE"] == (
        f"openadr3/programs/{program['id']}/events/create"
    )


def test_ven_hears_a_scheduler_event_its_revision_and_cancellation_and_a_rest_event(env: Env) -> None:
    ven_a_id = env.ven_ids["ven-depot-a"]
    ven_a = env.subscriber("ven-depot-a")
    ven_b = env.subscriber("ven-office-b")
    bl = env.subscriber("bl-operator")
    all_topic = _topics(env, f"vens/{ven_a_id}/events", "ven_a")["ALL"]
    assert not any(rc.is_failure for rc in ven_a.subscribe(all_topic))
    b_topic = _topics(env, f"vens/{env.ven_ids['ven-office-b']}/events", "ven_b")["ALL"]
    assert not any(rc.is_failure for rc in ven_b.subscribe(b_topic))
    assert not any(rc.is_failure for rc in bl.subscribe("openadr3/events/+"))

    event_id = "dr-mqtt-pc"
    scheduler_event(env.db_url, "peak_cut", event_id, {"depot-a": 40.0, "office-b": 55.0}, START)
    topic, created = ven_a.next()
    assert (topic, created["objectType"], created["operation"]) == (all_topic[:-1] + "create", "EVENT", "CREATE")
    event = created["object"]
    assert event["targets"] == ["site:depot-a"]  # as the VEN reads it: only its own site's target
    assert event["intervals"][0]["payloads"] == [{"type": "IMPORT_CAPACITY_LIMIT", "values": [40.0]}]
    assert openadr3.coerce_notification(created).operation == "CREATE"
    # The same object the VEN reads over REST.
    assert env.vtn.get(f"/events/{event['id']}", headers=env.token("ven_a")).json() == event

    scheduler_event(env.db_url, "peak_cut", event_id, {"depot-a": 30.0, "office-b": 55.0}, START, revision=2)
    topic, updated = ven_a.next()
    assert (topic, updated["operation"]) == (all_topic[:-1] + "update", "UPDATE")
    assert updated["object"]["id"] == event["id"]
    assert updated["object"]["eventName"].endswith("r2")
    assert updated["object"]["intervals"][0]["payloads"][0]["values"] == [30.0]

    cancel_scheduler_event(env.db_url, event_id)
    topic, deleted = ven_a.next()
    assert (topic, deleted["operation"], deleted["object"]["id"]) == (all_topic[:-1] + "delete", "DELETE", event["id"])

    # An event business logic creates through REST, for depot-a only.
    bl_headers = env.token("bl")
    program_id = event["programID"]
    rest_event = {
        "programID": program_id,
        "eventName": "rest-made",
        "targets": ["site:depot-a"],
        "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}],
        "intervalPeriod": {"start": START.isoformat(), "duration": "PT1H"},
    }
    response = env.vtn.post("/events", json=rest_event, headers=bl_headers)
    assert response.status_code == 201, response.text
    topic, rest_created = ven_a.next()
    assert (rest_created["operation"], rest_created["object"]["eventName"]) == ("CREATE", "rest-made")

    # Business logic heard all of it, office-b's event included, with every target.
    bl_seen: list[dict[str, Any]] = []
    while not bl_seen or bl_seen[-1]["object"]["eventName"] != "rest-made":
        bl_seen.append(bl.next()[1])
    assert {tuple(m["object"]["targets"]) for m in bl_seen} == {("site:depot-a",), ("site:office-b",)}
    assert {m["operation"] for m in bl_seen} == {"CREATE", "UPDATE", "DELETE"}
    # VEN B heard of office-b's event only.
    _drained(env.db_url)
    b_seen = []
    while True:
        try:
            b_seen.append(ven_b.next(timeout_s=1.0)[1])
        except queue.Empty:
            break
    assert b_seen[0]["operation"] == "CREATE"
    assert b_seen[-1]["operation"] == "DELETE"
    assert {tuple(m["object"]["targets"]) for m in b_seen} == {("site:office-b",)}
    _quiet(ven_a)


def test_a_ven_cannot_read_another_vens_topics(env: Env) -> None:
    a_topic = _topics(env, f"vens/{env.ven_ids['ven-depot-a']}/events", "ven_a")["ALL"]
    intruder = env.subscriber("ven-office-b")
    for stolen in (
        a_topic,
        "openadr3/clients/ven-depot-a/#",
        "openadr3/clients/+/vens/+/events/+",
        "openadr3/events/+",
        "openadr3/#",
        "#",
    ):
        assert [rc.value for rc in intruder.subscribe(stolen)] == [NOT_AUTHORIZED], stolen
    # Nor may a VEN publish a fake notification on the VTN's topics.
    info = intruder.client.publish(a_topic[:-1] + "create", b"{}", qos=1)
    info.wait_for_publish(TIMEOUT_S)
    witness = env.subscriber("ven-depot-a")
    assert not any(rc.is_failure for rc in witness.subscribe(a_topic))
    scheduler_event(env.db_url, "peak_shift", "dr-mqtt-private", {"depot-a": 20.0}, START + timedelta(days=1))
    _, seen = witness.next()
    assert seen["object"]["targets"] == ["site:depot-a"]
    _quiet(witness)  # the intruder's publication was dropped by the broker
    _quiet(intruder)  # and the intruder read nothing


def test_notification_made_while_the_broker_is_down_is_published_once_it_is_back(env: Env) -> None:
    topic = _topics(env, f"vens/{env.ven_ids['ven-depot-a']}/events", "ven_a")["ALL"]
    publisher = env.app.state.openadr_mqtt.publisher
    env.broker.stop()
    with psycopg.connect(env.db_url) as hold:
        try:
            scheduler_event(env.db_url, "peak_cut", "dr-mqtt-outage", {"depot-a": 25.0}, START + timedelta(days=3))
            deadline = time.monotonic() + TIMEOUT_S
            while _mqtt_rows(env.db_url) == 0:  # fanned out, waiting for the broker
                assert time.monotonic() < deadline, "the change was never queued for MQTT"
                time.sleep(0.05)
            time.sleep(2.0)  # down "for a while": the publisher's rounds find no broker
            # The runbook's troubleshooting query shows what waits.
            waiting = hold.execute("SELECT topic, attempts, last_error FROM openadr_mqtt_messages;").fetchall()
            assert topic[:-1] + "create" in {row[0] for row in waiting}
            hold.rollback()
            # Hold the queued rows (the publisher skips locked rows) until the VEN has subscribed again:
            # the broker restart ends the VEN's session, and the VEN's side of the outage is not under test.
            hold.execute("SELECT id FROM openadr_mqtt_messages FOR UPDATE").fetchall()
        finally:
            env.broker.start()
        ven_a = env.subscriber("ven-depot-a")
        assert not any(rc.is_failure for rc in ven_a.subscribe(topic))
        deadline = time.monotonic() + 30
        while not publisher.connected.is_set():
            assert time.monotonic() < deadline, "the notifier did not reconnect"
            time.sleep(0.05)
    _, message = ven_a.next(timeout_s=30)
    assert (message["operation"], message["object"]["eventName"]) == ("CREATE", "dr-mqtt-outage peak-cut depot-a r1")
    _drained(env.db_url)
    metrics = httpx.get(str(env.vtn.base_url).rstrip("/").removesuffix(BASE_PATH) + "/metrics").text
    assert 'vpp_openadr_mqtt_notifications_total{outcome="published"}' in metrics


def test_without_a_broker_url_the_vtn_offers_webhooks_only(vtn: httpx.Client, tokens: dict[str, str]) -> None:
    assert vtn.get("/notifiers", headers=bearer(tokens["bl"])).json() == {"WEBHOOK": True}
    for path in ("events", "programs", "vens/any-ven/events"):
        response = vtn.get(f"/notifiers/mqtt/topics/{path}", headers=bearer(tokens["bl"]))
        assert response.status_code == 404
        assert "no MQTT notifier binding" in response.json()["detail"]


def test_broker_config_issues_openadr_clients_secrets_rotates_and_drops_revoked_ones(db_url: str) -> None:
    upgrade(db_url)
    services = ServiceAccounts("ingest", "scheduler", "")
    passwords = {"ingest": "ingest-secret-for-tests", "scheduler": "scheduler-secret-for-tests"}
    with psycopg.connect(db_url) as conn:
        add_openadr_client(conn, "ven-depot-a", "ven-a-secret-0123456789", "ven")
        add_openadr_client(conn, "utility-bl", "bl-secret-0123456789", "bl")
        files = issue_and_render(conn, services, passwords, openadr_vtn=(["openadr-vtn"], VTN_BROKER_PASSWORD))
        conn.commit()
        assert sorted(files.new_secrets) == ["utility-bl", "ven-depot-a"]
        stored = conn.execute("SELECT string_agg(encode(password_hash, 'base64'), '') FROM openadr_broker_credentials")
        assert all(secret not in str(stored.fetchone()) for secret in files.new_secrets.values())
        clients = {c["username"]: c for c in json.loads(files.dynsec_text)["clients"]}
        assert {"ven-depot-a", "utility-bl", "openadr-vtn"} <= set(clients)
        # Passwords stay in the database's hashes: a second run issues nothing new and keeps them.
        again = issue_and_render(conn, services, passwords)
        assert again.new_secrets == {}
        kept = {c["username"]: c["password"] for c in json.loads(again.dynsec_text)["clients"]}
        assert kept["ven-depot-a"] == clients["ven-depot-a"]["password"]
        rotated = issue_and_render(conn, services, passwords, rotate=["ven-depot-a"])
        assert sorted(rotated.new_secrets) == ["ven-depot-a"]
        assert rotated.new_secrets["ven-depot-a"] != files.new_secrets["ven-depot-a"]
        revoke_openadr_client(conn, "ven-depot-a")
        after = issue_and_render(conn, services, passwords)
        usernames = {c["username"] for c in json.loads(after.dynsec_text)["clients"]}
        assert "ven-depot-a" not in usernames
        assert "openadr-ven:ven-depot-a" not in {r["rolename"] for r in json.loads(after.dynsec_text)["roles"]}
        conn.rollback()


@contextmanager
def _stalling_receiver() -> Iterator[tuple[str, threading.Event, threading.Event]]:
    """A webhook receiver that holds every POST until released: (url, a POST is held, release)."""
    held, release = threading.Event(), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            held.set()
            release.wait(TIMEOUT_S * 2)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="stalling-receiver", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/callback", held, release
    finally:
        release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_slow_webhook_receiver_does_not_hold_mqtt_notifications_back(env: Env) -> None:
    ven_a = env.subscriber("ven-depot-a")
    topic = _topics(env, f"vens/{env.ven_ids['ven-depot-a']}/events", "ven_a")["ALL"]
    assert not any(rc.is_failure for rc in ven_a.subscribe(topic))
    headers = env.token("ven_a")
    with _stalling_receiver() as (url, held, release):
        subscription = {
            "clientName": "depot-a-ems",
            "objectOperations": [{"objects": ["EVENT"], "operations": ["CREATE", "UPDATE"], "callbackUrl": url}],
        }
        created = env.vtn.post("/subscriptions", json=subscription, headers=headers)
        assert created.status_code == 201, created.text
        try:
            start = START + timedelta(days=5)
            scheduler_event(env.db_url, "peak_cut", "dr-mqtt-slow-hook", {"depot-a": 35.0}, start)
            assert held.wait(TIMEOUT_S), "the webhook POST never arrived"
            assert ven_a.next()[1]["operation"] == "CREATE"
            # The outbox loop now waits on the held POST; the revision still reaches the VEN over MQTT.
            scheduler_event(env.db_url, "peak_cut", "dr-mqtt-slow-hook", {"depot-a": 30.0}, start, revision=2)
            _, updated = ven_a.next()
            assert (updated["operation"], updated["object"]["eventName"]) == (
                "UPDATE",
                "dr-mqtt-slow-hook peak-cut depot-a r2",
            )
            assert not release.is_set()  # (the POST is still held)
        finally:
            release.set()
            deleted = env.vtn.delete(f"/subscriptions/{created.json()['id']}", headers=headers)
            assert deleted.status_code == 200, deleted.text
