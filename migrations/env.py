"""Alembic environment: hand-written SQL migrations, run over psycopg 3.

The URL is taken from the Alembic config's `sqlalchemy.url` when a caller set it (the CLI and tests
do), else from VPP_DATABASE_URL.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from vpp.postgres.connect import sqlalchemy_url

config = context.config
url = config.get_main_option("sqlalchemy.url") or os.environ.get("VPP_DATABASE_URL")
if not url:
    raise SystemExit("set VPP_DATABASE_URL (or run `vpp db upgrade`, which starts the embedded server)")

engine = create_engine(sqlalchemy_url(url))
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
