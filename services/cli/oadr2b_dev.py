"""`vpp up --depot-protocol oadr2b`: development certificates and the depot's VEN onboarding.

A development CA, the VTN's server certificate and the depot VEN's client certificate are made with
`openssl` into ``<data dir>/oadr2b`` on the first start and reused after. They exist so the 2.0b loop
runs over TLS with client certificates as it does in production; they are not for production, where
the VTN (`vpp oadr2b serve`) is given the operator's certificates and the VENs bring their own.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from openleadr.utils import certificate_fingerprint

from services.cli.stack import StartupError
from vpp.postgres.oadr2b import add_ven, list_vens

__all__ = ["DEPOT_VEN_NAME", "DevPki", "dev_pki", "onboard_dev_ven"]

DEPOT_VEN_NAME = "depot-ven"
_DAYS = "825"  # the longest validity clients still accept for a server certificate

# ECDSA P-256: one of the two 2.0b certificate types, and the cheap one to sign with (docs/oadr2b.md).
_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path

    @property
    def fingerprint(self) -> str:
        return str(certificate_fingerprint(self.cert.read_text()))


@dataclass(frozen=True)
class DevPki:
    ca: KeyPair
    vtn: KeyPair
    ven: KeyPair


def _openssl(*args: str) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise StartupError("openssl is needed to make the development 2.0b certificates: run `make deps`")
    result = subprocess.run([binary, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StartupError(f"openssl could not make the development 2.0b certificates: {result.stderr.strip()[:200]}")


def _issue(ca: KeyPair, base: Path, name: str, *, server: bool) -> KeyPair:
    pair = KeyPair(base / f"{name}.crt", base / f"{name}.key")
    if pair.cert.exists() and pair.key.exists():
        return pair
    csr, ext = base / f"{name}.csr", base / f"{name}.ext"
    san = "subjectAltName = DNS:localhost, IP:127.0.0.1\n" if server else ""
    ext.write_text(f"extendedKeyUsage = {'serverAuth' if server else 'clientAuth'}\n{san}")
    _openssl("req", *_EC, "-nodes", "-subj", f"/CN={name}", "-keyout", str(pair.key), "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key), "-CAcreateserial",
             "-days", _DAYS, "-extfile", str(ext), "-out", str(pair.cert))  # fmt: skip
    csr.unlink()
    ext.unlink()
    return pair


def dev_pki(data_dir: Path) -> DevPki:
    """The development CA, VTN and depot VEN certificates under ``data_dir/oadr2b``, made if missing."""
    base = data_dir / "oadr2b"
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o700)  # private keys
    ca = KeyPair(base / "dev-ca.crt", base / "dev-ca.key")
    if not (ca.cert.exists() and ca.key.exists()):
        _openssl("req", "-x509", *_EC, "-nodes", "-days", _DAYS, "-subj", "/CN=vpp development 2.0b CA",
                 "-keyout", str(ca.key), "-out", str(ca.cert))  # fmt: skip
    return DevPki(ca, _issue(ca, base, "vtn", server=True), _issue(ca, base, DEPOT_VEN_NAME, server=False))


def onboard_dev_ven(conn: psycopg.Connection, site_id: str, fingerprint: str) -> str:
    """Onboard the depot's VEN (once; later starts find it); returns its venID."""
    existing = next((v for v in list_vens(conn) if v.ven_name == DEPOT_VEN_NAME), None)
    if existing is None:
        return add_ven(conn, DEPOT_VEN_NAME, site_ids=[site_id], fingerprint=fingerprint, ven_id="VEN-DEPOT").ven_id
    if existing.revoked or existing.fingerprint != fingerprint.upper():
        raise StartupError(
            f"the 2.0b VEN {DEPOT_VEN_NAME!r} in the database is revoked or has another certificate than the one in "
            "the data folder's oadr2b/; start with a fresh VPP_DATA_DIR"
        )
    return existing.ven_id
