"""`vpp broker-config`: Mosquitto's password and ACL files from the sites table, and site secrets.

OpenADR clients (`vpp clients add --role bl|ven`) get broker secrets the same way, for the VTN's MQTT
notifier binding; they are in the dynamic-security file only (vpp/broker_roles.py,
`openadr_security_config`).

A site gets a random secret the first time this runs after it is registered (or when `--rotate`d);
only its hash is stored. The plaintext leaves this command exactly once: on stdout as
``site_id<TAB>secret`` lines, or in the `--secrets-out` file (created with mode 0600, never
overwritten). The order of steps is chosen so a failure never strands a secret nobody has seen:
the secrets file is written before the database commits, stdout right after it, and the broker files
last (re-running the command rewrites them from the database without issuing anything new).
"""

from __future__ import annotations

import contextlib
import grp
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import typer
from rich.console import Console

from vpp.broker_roles import (
    broker_security_lines,
    dynamic_security_config,
    dynamic_security_plugin,
    openadr_security_config,
)
from vpp.broker_security import (
    PasswordHash,
    ServiceAccounts,
    acl_file,
    hash_password,
    new_site_secret,
    password_file,
)
from vpp.embedded.resolve import ensure_database
from vpp.postgres import broker_credentials as creds
from vpp.postgres import openadr_broker
from vpp.postgres.connect import connect
from vpp.postgres.migrate import upgrade
from vpp.settings import Settings, load_settings

__all__ = [
    "BrokerFiles",
    "broker_config",
    "embedded_broker_roles",
    "issue_and_render",
    "service_accounts",
    "write_broker_files",
]

console = Console(stderr=True)

PASSWORD_FILE = "passwd"
ACL_FILE = "acl"
# The dynamic-security plugin's file and the mosquitto.conf lines that load it: what a production
# broker should use (vpp/broker_roles.py says why); `passwd` and `acl` stay for brokers without it.
DYNSEC_FILE = "dynamic-security.json"
SECURITY_CONF = "mosquitto-security.conf"
DEFAULT_PLUGIN = "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so"
# Readable by the broker's group (Mosquitto reloads the files as its unprivileged user on SIGHUP).
FILE_MODE = 0o640


@dataclass(frozen=True)
class BrokerFiles:
    password_text: str
    acl_text: str
    dynsec_text: str
    new_secrets: dict[str, str] = field(default_factory=dict)
    revoked: tuple[str, ...] = ()


def issue_and_render(
    conn: psycopg.Connection,
    services: ServiceAccounts,
    service_passwords: dict[str, str],
    *,
    rotate: list[str] | tuple[str, ...] = (),
    revoke: list[str] | tuple[str, ...] = (),
    issue_new: bool = True,
    openadr_vtn: tuple[list[str], str] | None = None,
) -> BrokerFiles:
    """Issue secrets for sites without one (unless not `issue_new`) and for `rotate`, shut out
    `revoke`, and render both files.

    Runs inside the caller's transaction (nothing is committed here). Service passwords are hashed
    with a fresh salt each time; they come from the settings, not the database.

    OpenADR clients (the MQTT notifier binding) are issued broker secrets the same way, keyed by their
    client ID; `rotate` may name them too. `openadr_vtn`: the API publishers' usernames and password.
    """
    if set(rotate) & set(revoke):
        raise ValueError(f"a site cannot be both rotated and revoked: {sorted(set(rotate) & set(revoke))}")
    creds.lock_credentials(conn)
    rotate_clients = openadr_broker.openadr_clients_among(conn, rotate)
    rotate = [name for name in rotate if name not in rotate_clients]
    unknown = creds.unknown_sites(conn, [*rotate, *revoke])
    if unknown:
        raise LookupError(f"no such site: {', '.join(unknown)}")
    revoked = tuple(site_id for site_id in revoke if creds.revoke_credential(conn, site_id))
    new_secrets: dict[str, str] = {}
    new_sites = creds.sites_without_credentials(conn) if issue_new else []
    for site_id in sorted({*new_sites, *rotate} - set(revoke)):
        secret = new_site_secret()
        creds.store_credential(conn, site_id, hash_password(secret))
        new_secrets[site_id] = secret
    new_clients = openadr_broker.clients_without_broker_credentials(conn) if issue_new else []
    for client_id in sorted({*new_clients, *rotate_clients}):
        secret = new_site_secret()
        openadr_broker.store_openadr_broker_credential(conn, client_id, hash_password(secret))
        new_secrets[client_id] = secret
    site_hashes = creds.load_credentials(conn)
    accounts: dict[str, PasswordHash] = dict(site_hashes)
    service_hashes: dict[str, PasswordHash] = {}
    for username, password in service_passwords.items():
        if username in accounts:
            raise ValueError(f"site id {username!r} collides with a service account's username")
        service_hashes[username] = accounts[username] = hash_password(password)
    vtn_accounts = {name: hash_password(openadr_vtn[1]) for name in openadr_vtn[0]} if openadr_vtn else {}
    dynsec = openadr_security_config(
        dynamic_security_config(site_hashes, services, service_hashes),
        openadr_broker.load_openadr_broker_credentials(conn),
        vtn_accounts,
    )
    return BrokerFiles(password_file(accounts), acl_file(list(site_hashes), services), dynsec, new_secrets, revoked)


def write_broker_files(
    out_dir: Path, files: BrokerFiles, *, group: str | None = None, broker_dir: Path | None = None
) -> tuple[Path, Path]:
    """Replace `passwd`, `acl`, `dynamic-security.json` and `mosquitto-security.conf` in `out_dir`
    atomically. `broker_dir` is where the broker sees `out_dir` (a container's mount point).

    Mosquitto reads both files as its unprivileged user (also on SIGHUP), so the broker must be able
    to read what we write: a replaced file keeps the previous file's owner and group where we are
    allowed to set them, and `group` sets the group explicitly (e.g. ``mosquitto``).
    """
    gid = _group_id(group) if group else None
    out_dir.mkdir(parents=True, exist_ok=True)
    password_path = out_dir / PASSWORD_FILE
    acl_path = out_dir / ACL_FILE
    _replace_atomically(password_path, files.password_text, gid)
    _replace_atomically(acl_path, files.acl_text, gid)
    _replace_atomically(out_dir / DYNSEC_FILE, files.dynsec_text, gid)
    plugin = dynamic_security_plugin() or DEFAULT_PLUGIN
    conf_lines = broker_security_lines(plugin, str((broker_dir or out_dir.resolve()) / DYNSEC_FILE))
    header = "# Generated by `vpp broker-config`: include from mosquitto.conf; restart the broker to apply.\n"
    _replace_atomically(out_dir / SECURITY_CONF, header + "\n".join(conf_lines) + "\n", gid)
    return password_path, acl_path


def _replace_atomically(path: Path, text: str, gid: int | None) -> None:
    # A broker reloading on SIGHUP mid-write must see the old file or the new one, never half of one.
    # (Mount the directory into a container, not the file: a renamed-over file is a new inode.)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        if path.exists():
            previous = path.stat()
            with contextlib.suppress(PermissionError):
                os.chown(tmp, previous.st_uid, previous.st_gid)
        if gid is not None:
            os.chown(tmp, -1, gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _group_id(group: str) -> int:
    """A group name, or a numeric id (a container's broker group need not exist where this runs)."""
    return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid


def _write_secrets_file(path: Path, secrets: dict[str, str]) -> None:
    # O_EXCL: an earlier file may hold secrets not yet handed to installers; never overwrite it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(_secrets_text(secrets))
        f.flush()
        os.fsync(f.fileno())


def _secrets_text(secrets: dict[str, str]) -> str:
    return "".join(f"{site_id}\t{secret}\n" for site_id, secret in sorted(secrets.items()))


def _service_passwords(settings: Settings) -> dict[str, str]:
    ingest_password = settings.secret("mqtt_ingest_password")
    passwords = {name: ingest_password for name in settings.ingest_accounts}
    passwords[settings.mqtt_scheduler_username] = settings.secret("mqtt_scheduler_password")
    return passwords


def _openadr_vtn(settings: Settings) -> tuple[list[str], str] | None:
    # The API processes' MQTT notifier accounts, once their password is set (VPP_MQTT_OPENADR_PASSWORD).
    if settings.mqtt_openadr_password is None:
        return None
    return settings.openadr_publisher_accounts, settings.secret("mqtt_openadr_password")


def service_accounts(settings: Settings) -> ServiceAccounts:
    return ServiceAccounts(
        settings.mqtt_ingest_username,
        settings.mqtt_scheduler_username,
        settings.ingest_share_group,
        tuple(settings.ingest_accounts),
    )


def embedded_broker_roles(database_url: str, settings: Settings, site_ids: list[str], out_dir: Path) -> dict[str, str]:
    """`vpp up`'s broker rules, made exactly as `vpp broker-config` makes them: the same service
    accounts and passwords from the settings, every site's stored hash, and a fresh secret for each
    of `site_ids` (the simulated sites, whose gateways run in the calling process). Other sites keep
    the secrets `vpp broker-config` issued them; none is issued here. Returns the simulated sites'
    secrets, which never touch the disk."""
    with connect(database_url, application_name="vpp-broker-config") as conn:
        files = issue_and_render(
            conn, service_accounts(settings), _service_passwords(settings), rotate=site_ids, issue_new=False
        )
        conn.commit()
    write_broker_files(out_dir, files)
    return files.new_secrets


def broker_config(
    out_dir: Path = typer.Option(..., "--out-dir", help="Directory to write Mosquitto's `passwd` and `acl` into"),
    rotate: list[str] = typer.Option(
        [], "--rotate", metavar="SITE", help="Issue a new secret for SITE or OpenADR client (repeatable)"
    ),
    revoke: list[str] = typer.Option(
        [], "--revoke", metavar="SITE", help="Shut SITE out until it is --rotate'd back in (repeatable)"
    ),
    secrets_out: Path | None = typer.Option(
        None, "--secrets-out", help="Write new secrets to this new file (mode 0600) instead of stdout"
    ),
    group: str | None = typer.Option(
        None, "--group", help="Give the broker files to this group (name or id; the one Mosquitto runs as), mode 0640"
    ),
    no_issue: bool = typer.Option(
        False, "--no-issue", help="Only rewrite the files from the database; sites without a secret stay shut out"
    ),
    broker_dir: Path | None = typer.Option(
        None, "--broker-dir", help="Where the broker sees --out-dir (e.g. /mosquitto/auth in a container)"
    ),
) -> None:
    """Generate Mosquitto's password and ACL files from the sites table; issue and rotate site secrets."""
    settings = load_settings()
    services = service_accounts(settings)
    if no_issue and rotate:
        console.print("[red]--rotate issues secrets; it cannot be combined with --no-issue[/red]")
        raise typer.Exit(2)
    if group is not None:
        try:
            _group_id(group)
        except KeyError:
            console.print(f"[red]no group {group!r} on this machine[/red]")
            raise typer.Exit(2) from None
    if secrets_out is not None and secrets_out.exists():
        console.print(f"[red]{secrets_out} exists; refusing to overwrite secrets that may not be delivered yet[/red]")
        raise typer.Exit(2)
    url, server = ensure_database(settings)
    if server is not None:
        upgrade(url)
    with connect(url, application_name="vpp-broker-config") as conn:
        try:
            files = issue_and_render(
                conn,
                services,
                _service_passwords(settings),
                rotate=rotate,
                revoke=revoke,
                issue_new=not no_issue,
                openadr_vtn=_openadr_vtn(settings),
            )
        except (LookupError, ValueError) as error:
            conn.rollback()
            console.print(f"[red]{error}[/red]")
            raise typer.Exit(2) from None
        if files.new_secrets and secrets_out is not None:
            _write_secrets_file(secrets_out, files.new_secrets)
        conn.commit()
    if files.new_secrets and secrets_out is None:
        sys.stdout.write(_secrets_text(files.new_secrets))
        sys.stdout.flush()
    password_path, acl_path = write_broker_files(out_dir, files, group=group, broker_dir=broker_dir)
    for site_id in sorted(files.new_secrets):
        console.print(f"issued a new secret for [bold]{site_id}[/bold]")
    for site_id in files.revoked:
        console.print(f"revoked [bold]{site_id}[/bold]")
    if files.new_secrets and secrets_out is not None:
        console.print(f"new secrets are in {secrets_out} (mode 0600): hand them to the installers, then delete it")
    console.print(
        f"wrote {out_dir / DYNSEC_FILE} and {out_dir / SECURITY_CONF} (restart the broker to apply), and "
        f"{password_path} and {acl_path} for brokers without the plugin (reload: kill -HUP <mosquitto pid>)"
    )
