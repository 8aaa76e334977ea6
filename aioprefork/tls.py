"""The worker's TLS context (ALPN http/1.1, client certificates) and the ASGI `tls` extension.

Internal. Built in each worker after fork (never shared across processes), so a graceful
restart, which forks new workers from the re-read config, picks up replaced certificate files
without dropping a connection. The context remembers the two things the ASGI tls extension
reports that OpenSSL will not tell us per connection: the server certificate as PEM and the
IANA number of each cipher suite name. `tls_extension()` is called once per connection (not
per request); its dict is the same for every request on that connection.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterable
from typing import Any, Final

from aioprefork.config.model import Config
from aioprefork.errors import ConfigError

__all__ = ["CERT_REQS", "ServerContext", "make_ssl_context", "rfc4514_name", "tls_extension"]

CERT_REQS: Final = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
# ASGI tls extension: tls_version is the TLS record version number (RFC 8446 appendix B.1).
TLS_VERSIONS: Final = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
# RFC 4514 section 3: the short names; any other attribute keeps the name Python gives it.
_SHORT_NAMES: Final = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}
_PEM_CERT: Final = re.compile(
    r"-----BEGIN CERTIFICATE-----\s.+?\s-----END CERTIFICATE-----", re.DOTALL
)


class ServerContext(ssl.SSLContext):
    """A server SSLContext that also carries what the tls extension reports."""

    server_cert: str | None = None  # PEM of the leaf certificate we present
    cipher_ids: dict[str, int] = {}  # OpenSSL cipher name -> IANA TLS cipher suite number


def make_ssl_context(config: Config) -> ServerContext | None:
    if not config.ssl_certfile:
        return None
    context = ServerContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(
            config.ssl_certfile,
            config.ssl_keyfile or None,
            password=config.ssl_keyfile_password or None,
        )
        with open(config.ssl_certfile, encoding="ascii", errors="replace") as file:
            leaf = _PEM_CERT.search(file.read())
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("ssl_certfile", config.ssl_certfile, "tls settings", _why(exc)) from None
    context.server_cert = leaf.group(0) + "\n" if leaf else None
    try:
        context.set_ciphers(config.ssl_ciphers)
    except ssl.SSLError:
        raise ConfigError(
            "ssl_ciphers", config.ssl_ciphers, "tls settings", "no usable cipher"
        ) from None
    context.cipher_ids = {c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()}
    if config.ssl_cert_reqs != "none" and not config.ssl_ca_certs:
        raise ConfigError(
            "ssl_cert_reqs",
            config.ssl_cert_reqs,
            "tls settings",
            "client certificates need ssl_ca_certs (the CA bundle to verify them with)",
        )
    context.verify_mode = CERT_REQS[config.ssl_cert_reqs]
    if config.ssl_ca_certs:
        try:
            context.load_verify_locations(config.ssl_ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                "ssl_ca_certs", config.ssl_ca_certs, "tls settings", _why(exc)
            ) from None
    # h2 first: a client that offers both gets HTTP/2 (http2 = "off": HTTP/1.1 only)
    context.set_alpn_protocols(["h2", "http/1.1"] if config.http2 != "off" else ["http/1.1"])
    return context


def tls_extension(ssl_object: ssl.SSLObject) -> dict[object, object]:
    """The ASGI `tls` scope extension for one established TLS connection.

    client_cert_error is always None: a certificate that fails verification fails the
    handshake (OpenSSL's SSL_VERIFY_PEER), so no request ever arrives with one.
    """
    context = ssl_object.context
    der = ssl_object.getpeercert(binary_form=True)
    peer: Any = ssl_object.getpeercert() if der else None  # typeshed's value type is too loose
    cipher = ssl_object.cipher()
    return {
        "server_cert": getattr(context, "server_cert", None),
        "client_cert_chain": [ssl.DER_cert_to_PEM_cert(der)] if der else [],
        "client_cert_name": rfc4514_name(peer["subject"]) if peer else None,
        "client_cert_error": None,
        "tls_version": TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": getattr(context, "cipher_ids", {}).get(cipher[0]) if cipher else None,
    }


def rfc4514_name(subject: Iterable[Iterable[tuple[str, str]]]) -> str:
    """A subject as `ssl.getpeercert()` gives it, as an RFC 4514 string (last RDN first)."""
    rdns = ["+".join(f"{_SHORT_NAMES.get(k, k)}={_escape(v)}" for k, v in rdn) for rdn in subject]
    return ",".join(reversed(rdns))


def _escape(value: str) -> str:
    # RFC 4514 section 2.4
    out = "".join("\\" + c if c in ',+"\\<>;' else c for c in value)
    if out.startswith(("#", " ")):
        out = "\\" + out
    if out.endswith(" ") and not out.endswith("\\ "):
        out = out[:-1] + "\\ "
    return out


def _why(exc: OSError | ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
    if "PEM" in reason:  # "[SSL] PEM lib (_ssl.c:NNNN)": a file OpenSSL could not read as PEM
        return "not a PEM certificate or key (or the key does not match the certificate)"
    if reason == "KEY_VALUES_MISMATCH":
        return "the private key does not match the certificate"
    return reason
