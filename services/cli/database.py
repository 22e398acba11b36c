"""Which database a `vpp` command uses, without leaving a server behind or creating one by accident.

Order: VPP_DATABASE_URL; the database of a `vpp up` running on this data folder; the embedded server
under the data folder, started for this command only and stopped after it. A folder with no platform
data is an error (one line saying what to run), unless the command creates the database (`vpp db`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from services.cli.platform_file import read_platform_file
from vpp.embedded.resolve import embedded_postgres
from vpp.settings import Settings

__all__ = ["CliError", "cli_database"]


class CliError(RuntimeError):
    """A command cannot do what was asked; the message says what to do instead (printed as one line)."""


@contextmanager
def cli_database(settings: Settings, *, create: bool = False) -> Iterator[str]:
    if settings.database_url:
        yield settings.database_url
        return
    data_dir = settings.data_dir.resolve()
    running = read_platform_file(data_dir)
    if running is not None and running.get("database_url"):
        yield str(running["database_url"])
        return
    server = embedded_postgres(data_dir)
    if not create and not server.initialised():
        raise CliError(
            f"no platform data in {data_dir}: start the platform with `vpp up` (or set VPP_DATA_DIR / VPP_DATABASE_URL)"
        )
    started_here = not server.running()
    server.start()
    try:
        yield server.url
    finally:
        if started_here:
            server.stop()
