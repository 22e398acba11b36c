"""A throw-away CA, a VTN server certificate and VEN client certificates, made with `openssl`."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from openleadr.utils import certificate_fingerprint


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path

    @property
    def fingerprint(self) -> str:
        return str(certificate_fingerprint(self.cert.read_text()))


def _openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        pytest.fail("openssl is needed to make the test CA: run `make deps` (it installs it)")
    return found


def _run(*args: str) -> None:
    subprocess.run([_openssl(), *args], check=True, capture_output=True)


# ECDSA P-256 (one of the two OpenADR 2.0b certificate types): openleadr re-reads the private key for
# every message it signs, which costs ~0.13 s per read for RSA-2048 (cryptography checks the key) and
# well under a millisecond for P-256.
_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1")
_RSA = ("-newkey", "rsa:2048")


def make_ca(base: Path) -> KeyPair:
    ca = KeyPair(base / "ca.crt", base / "ca.key")
    _run("req", "-x509", *_EC, "-nodes", "-days", "2", "-subj", "/CN=vpp-test-ca",
         "-keyout", str(ca.key), "-out", str(ca.cert))  # fmt: skip
    return ca


def issue(ca: KeyPair, base: Path, name: str, *, server: bool = False, rsa: bool = False) -> KeyPair:
    """A certificate for `name` signed by `ca` (P-256, or RSA-2048); a server one is valid for localhost and 127.0.0.1."""
    pair = KeyPair(base / f"{name}.crt", base / f"{name}.key")
    csr = base / f"{name}.csr"
    ext = base / f"{name}.ext"
    usage = "serverAuth" if server else "clientAuth"
    san = "subjectAltName = DNS:localhost, IP:127.0.0.1\n" if server else ""
    ext.write_text(f"extendedKeyUsage = {usage}\n{san}")
    _run("req", *(_RSA if rsa else _EC), "-nodes", "-subj", f"/CN={name}", "-keyout", str(pair.key), "-out", str(csr))
    _run("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key), "-CAcreateserial",
         "-days", "2", "-extfile", str(ext), "-out", str(pair.cert))  # fmt: skip
    return pair
