"""A throwaway PKI made at test time with the openssl CLI: a CA, a server and a client certificate.

EC P-256 keys (milliseconds to make, unlike RSA). The server certificate is for localhost and
127.0.0.1; the client's subject has a comma in it, to check RFC 4514 escaping.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

CLIENT_SUBJECT = "/O=Example, Inc./CN=client one"
CLIENT_NAME = "CN=client one,O=Example\\, Inc."  # RFC 4514: last RDN first, comma escaped


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _key(name: str, cwd: Path) -> None:
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", name, cwd=cwd
    )


def _issue(name: str, subject: str, ext: str, cwd: Path, ca: str = "ca") -> None:
    """name.key + name.pem signed by ca.key with the extensions in `ext`."""
    _key(f"{name}.key", cwd)
    _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=cwd)
    (cwd / f"{name}.ext").write_text(ext)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-days", "2", "-sha256", "-extfile", f"{name}.ext",
        "-out", f"{name}.pem", cwd=cwd,
    )  # fmt: skip


def make_pki(directory: Path, *, server_cn: str = "localhost") -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    _key("ca.key", directory)
    _openssl(
        "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=aioprefork test CA", "-days", "2",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", "ca.pem", cwd=directory,
    )  # fmt: skip
    common = "basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    _issue(
        "server",
        f"/CN={server_cn}",
        common + "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        directory,
    )
    _issue("client", CLIENT_SUBJECT, common + "extendedKeyUsage=clientAuth\n", directory)
    return Pki(
        ca=directory / "ca.pem",
        cert=directory / "server.pem",
        key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
