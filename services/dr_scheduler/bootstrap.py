"""What builds the DR scheduler from settings: used by `python -m services.dr_scheduler` and by `vpp up`.

The composition lives here, once, so the deployed scheduler and the one `vpp up` runs as a thread
publish with the same account and client id scheme; `__main__` adds only what belongs to a process of its
own (signals, the metrics server, exiting on a missing secret).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Sequence

from vpp.mqtt import BrokerAddress
from vpp.settings import Settings

from .dispatch import Dispatcher
from .loop import serve
from .metrics import SchedulerMetrics

__all__ = ["dispatcher_from_settings", "instance_name", "serve_from_settings"]


def instance_name(settings: Settings) -> str:
    return settings.scheduler_instance or f"{socket.gethostname()}-{os.getpid()}"


def dispatcher_from_settings(
    settings: Settings, broker: BrokerAddress | Sequence[BrokerAddress], metrics: SchedulerMetrics
) -> Dispatcher:
    # The scheduler's account on a configured broker, and on the embedded one whenever there is a
    # password (always in development, where `vpp up`'s Mosquitto enforces the roles).
    authenticated = bool(settings.broker_urls) or settings.mqtt_scheduler_password is not None
    return Dispatcher(
        broker, metrics,
        client_id=f"dr-scheduler-{instance_name(settings)}",  # unique: two schedulers must not evict each other
        username=settings.mqtt_scheduler_username if authenticated else None,
        password=settings.secret("mqtt_scheduler_password") if authenticated else None,
    )  # fmt: skip


def serve_from_settings(
    settings: Settings,
    database_url: str,
    brokers: Sequence[BrokerAddress],
    metrics: SchedulerMetrics,
    stopping: threading.Event,
) -> None:
    """Stand by, lead and reconnect (:func:`.loop.serve`) until ``stopping`` is set, as the settings say."""
    serve(
        database_url, lambda: dispatcher_from_settings(settings, brokers, metrics), metrics, stopping,
        instance=instance_name(settings), tick_s=settings.scheduler_tick_s, lease_poll_s=settings.scheduler_lease_poll_s,
    )  # fmt: skip
