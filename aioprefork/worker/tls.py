"""The worker's TLS context, built from the tls settings (ALPN http/1.1, optional client certificates).

Built in each worker after fork (never shared across processes), so a graceful restart, which
forks new workers from the re-read config, reloads certificates without dropping a connection.
"""

from __future__ import annotations

import ssl

from aioprefork.config.model import Config
from aioprefork.errors import ConfigError

CERT_REQS = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}


def make_ssl_context(config: Config) -> ssl.SSLContext | None:
    if not config.ssl_certfile:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(
            config.ssl_certfile,
            config.ssl_keyfile or None,
            password=config.ssl_keyfile_password or None,
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("ssl_certfile", config.ssl_certfile, "tls settings", _why(exc)) from None
    try:
        context.set_ciphers(config.ssl_ciphers)
    except ssl.SSLError:
        raise ConfigError(
            "ssl_ciphers", config.ssl_ciphers, "tls settings", "no usable cipher"
        ) from None
    context.verify_mode = CERT_REQS[config.ssl_cert_reqs]
    if config.ssl_ca_certs:
        try:
            context.load_verify_locations(config.ssl_ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                "ssl_ca_certs", config.ssl_ca_certs, "tls settings", _why(exc)
            ) from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def _why(exc: OSError | ssl.SSLError) -> str:
    return getattr(exc, "reason", None) or exc.strerror or str(exc)
