"""`python -m services.api`: serve the API with uvicorn (embedded database when none is configured)."""

from __future__ import annotations

import sys

import uvicorn

from services.api.main import create_app
from vpp.embedded.resolve import ensure_database
from vpp.log import configure_logging
from vpp.settings import MissingSecretError, settings_or_exit


def main() -> None:
    settings = settings_or_exit()
    try:
        settings.secret("api_signing_key")
    except MissingSecretError as error:
        sys.exit(f"vpp: {error}")
    configure_logging(settings.log_level, settings.log_format)
    url, _server = ensure_database(settings)
    uvicorn.run(create_app(settings, database_url=url), host=settings.api_host, port=settings.api_port, log_config=None)


if __name__ == "__main__":
    main()
