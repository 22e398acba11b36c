"""A site that accepted a signal and then rejects the same revision (its battery failed, say): the event may
no longer say `acknowledged`, which means every called site accepted its latest revision.

Before, the rejection was stored on the site's row but the event stayed `acknowledged` (in `vpp dr events`,
the dashboard's timeline and the API's status) with nothing in its audit trail, so an operator counted on a
reduction the site had declined.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from services.dr_scheduler.scheduler import EventRequest, Scheduler
from tests.integration.dr.depot_history import EVENT_DAY, SITE, depot_loop, jst
from vpp.domain.dr_events import DrAck, ack_payload
from vpp.embedded.broker import EmbeddedBroker
from vpp.postgres import dr_events as store

pytestmark = pytest.mark.integration


def test_a_rejection_after_acceptance_takes_the_acknowledgement_back(db_url: str, broker: EmbeddedBroker) -> None:
    morning, event_start, event_end = jst(EVENT_DAY, 9), jst(EVENT_DAY, 14), jst(EVENT_DAY, 16)
    with depot_loop(db_url, broker.port, morning, client_id="dr-ack-test") as loop, psycopg.connect(db_url) as conn:
        scheduler = Scheduler(conn, loop.dispatcher, loop.metrics)
        event = scheduler.create_event(
            EventRequest(event_start, event_end, requested_kw=8.0, site_ids=(SITE,)), now=morning, actor="operator:t"
        )
        scheduler.dispatch(event.event_id, now=morning, actor="operator:t")
        ack = loop.dispatcher.acks.get(timeout=10)
        scheduler.handle_ack(ack.site_id, ack.payload, now=morning)
        assert store.get_event(conn, event.event_id).status == "acknowledged"  # type: ignore[union-attr]

        # Another site's (or an unknown event's) rejection changes nothing.
        stray = ack_payload(DrAck(event.event_id, 1, False, morning, "not mine"))
        scheduler.handle_ack("site-nobody", stray, now=morning)
        assert store.get_event(conn, event.event_id).status == "acknowledged"  # type: ignore[union-attr]

        later = morning + timedelta(minutes=3)
        rejection = ack_payload(DrAck(event.event_id, 1, False, later, "battery fault"))
        scheduler.handle_ack(SITE, rejection, now=later)
        current = store.get_event(conn, event.event_id)
        assert current is not None
        assert current.status == "dispatched"
        (site,) = store.event_sites(conn, event.pk)
        assert site.ack_status == "rejected"
        last = store.audit_trail(conn, event.pk)[-1]
        assert (last["actor"], last["from_status"], last["to_status"]) == (f"site:{SITE}", "acknowledged", "dispatched")
        assert last["detail"]["rejected"] == "battery fault"

        # Accepting again restores it.
        again = ack_payload(DrAck(event.event_id, 1, True, later, "fixed"))
        scheduler.handle_ack(SITE, again, now=later)
        assert store.get_event(conn, event.event_id).status == "acknowledged"  # type: ignore[union-attr]
