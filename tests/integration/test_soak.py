"""The soak test in miniature (issue 7): 300 sites for 90 s through a worker SIGKILL, a broker restart
and a PostgreSQL crash. `vpp bench soak` runs the full 20,000-site version."""

from __future__ import annotations

import pytest

from bench.soak import run_soak
from vpp.embedded.broker import EmbeddedBroker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_soak_with_three_faults_stores_every_published_reading_once() -> None:
    if EmbeddedBroker.mosquitto_binary() is None:
        pytest.fail("mosquitto is not installed: run `make deps` (it installs Debian's mosquitto)")
    # Faults early enough that lag can be seen recovering after the last one (PostgreSQL's crash
    # recovery alone takes seconds) while the fleet is still publishing.
    result = run_soak(sites=300, minutes=1.5, fault_at=(0.15, 0.35, 0.55), grace_s=20.0)

    assert result.readings_published == 300 * 9 * 4  # one 4-reading message per site per 10 s
    assert result.readings_stored == result.readings_published
    assert result.devices_mismatched == 0, f"missing {result.readings_missing}, unexpected {result.readings_unexpected}"
    assert result.duplicate_rows == 0
    assert result.unrouted_messages == 0, "the broker accepted messages it routed to no ingest worker"
    assert result.dead_letters == 0
    assert [f.name for f in result.faults] == ["ingest SIGKILL", "broker restart", "PostgreSQL crash"]
    for fault in result.faults:
        assert fault.restored_s is not None
        assert fault.lag_recovered_s is not None, f"lag did not recover after the {fault.name}"
        assert fault.caught_up_s is not None, f"ingest did not catch up after the {fault.name}"
    assert result.p99_lag_steady_s is not None
    assert result.p99_lag_steady_s < 2.0
