"""`python -m services.oadr2b` (or `vpp oadr2b serve`): run the 2.0b VTN until interrupted."""

from __future__ import annotations

import asyncio
import contextlib

from services.oadr2b.settings import Oadr2bSettings
from services.oadr2b.vtn import Oadr2bVtn
from vpp.embedded.resolve import ensure_database
from vpp.log import configure_logging
from vpp.settings import load_settings


async def serve(settings: Oadr2bSettings, database_url: str) -> None:
    vtn = Oadr2bVtn(settings, database_url)
    await vtn.start()
    try:
        await asyncio.Event().wait()  # until cancelled (Ctrl-C)
    finally:
        await vtn.stop()


def main() -> None:
    platform = load_settings()
    configure_logging(platform.log_level, platform.log_format)
    settings = Oadr2bSettings()
    url, _server = ensure_database(platform)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, url))


if __name__ == "__main__":
    main()
