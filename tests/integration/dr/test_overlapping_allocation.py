"""A second event in the same slots asks of each site only what the first left it: the deliverable is the
site's battery and EV flexibility once, not once per event (before, the second event was reported fully
allocated with no shortfall while its looser limits changed nothing at the site)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import psycopg
import pytest

from services.dr_scheduler.scheduler import EventRequest, Scheduler
from tests.integration.dr.test_dr_api import RecordingSink
from tests.integration.dr.test_intraday_replan import EVENT_DAY, _site
from vpp.domain.slots import JST
from vpp.postgres import dr_events as store

pytestmark = pytest.mark.integration


def test_a_second_overlapping_event_gets_only_what_is_left(db_url: str) -> None:
    midnight = datetime.combine(EVENT_DAY, time(0), JST)
    morning, start, end = midnight + timedelta(hours=8), midnight + timedelta(hours=17), midnight + timedelta(hours=20)
    with psycopg.connect(db_url) as conn:
        _site(conn, "site-a")
        conn.commit()
        scheduler = Scheduler(conn, RecordingSink())
        first = scheduler.create_event(EventRequest(start, end, 4.0, site_ids=("site-a",)), now=morning, actor="t")
        scheduler.dispatch(first.event_id, now=morning, actor="t")
        (a,) = store.event_sites(conn, first.pk)
        assert a.allocated_kw == pytest.approx(4.0)
        deliverable_kw = a.deliverable_kw
        assert deliverable_kw is not None
        assert deliverable_kw > 4.0

        second = scheduler.create_event(
            EventRequest(start + timedelta(hours=1), end, 100.0, site_ids=("site-a",)), now=morning, actor="t"
        )
        (b,) = store.event_sites(conn, second.pk)
        # What the first event did not take, and a limit tighter than the first's so the merged signal delivers both.
        assert b.allocated_kw == pytest.approx(deliverable_kw - 4.0, abs=0.05)
        assert second.shortfall_kw == pytest.approx(100.0 - b.allocated_kw)
        assert a.import_limit_kw is not None
        assert b.import_limit_kw is not None
        assert b.import_limit_kw == pytest.approx(a.import_limit_kw - b.allocated_kw, abs=0.05)

        # Cancelled, the first event leaves the site's whole flexibility to the second.
        scheduler.cancel(first.event_id, now=morning, actor="t")
        adjusted = scheduler.adjust(second.event_id, 100.0, now=morning, actor="t")
        (b,) = store.event_sites(conn, adjusted.pk)
        assert b.allocated_kw == pytest.approx(deliverable_kw, abs=0.05)
