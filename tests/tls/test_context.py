"""make_ssl_context and the ASGI tls extension, over real TLS handshakes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import pytest

from aioprefork.config.model import Config
from aioprefork.errors import ConfigError
from aioprefork.tls import ServerContext, make_ssl_context, rfc4514_name, tls_extension

from .certs import CLIENT_NAME, Pki


def _config(pki: Pki, **settings: Any) -> Config:
    files = {"ssl_certfile": str(pki.cert), "ssl_keyfile": str(pki.key)}
    return Config(**(files | settings))


def test_no_certfile_means_no_tls() -> None:
    assert make_ssl_context(Config()) is None


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"ssl_certfile": "/nonexistent/cert.pem"}, "ssl_certfile"),
        ({"ssl_ciphers": "NO-SUCH-CIPHER"}, "ssl_ciphers"),
        ({"ssl_cert_reqs": "required"}, "ssl_cert_reqs"),  # without ssl_ca_certs
        ({"ssl_cert_reqs": "optional", "ssl_ca_certs": "/nonexistent/ca.pem"}, "ssl_ca_certs"),
    ],
)
def test_bad_settings_name_their_key(pki: Pki, settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_ssl_context(_config(pki, **settings))
    assert info.value.key == key
    assert "\n" not in str(info.value)


def test_context_defaults(pki: Pki) -> None:
    context = make_ssl_context(_config(pki))
    assert isinstance(context, ServerContext)
    assert context.verify_mode == ssl.CERT_NONE
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.server_cert == pki.cert.read_text()
    assert context.cipher_ids["TLS_AES_256_GCM_SHA384"] == 0x1302


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        (((("commonName", "a"),),), "CN=a"),
        (
            ((("countryName", "DE"),), (("organizationName", "A, B"),), (("commonName", "x"),)),
            "CN=x,O=A\\, B,C=DE",
        ),
        (((("commonName", "a"), ("userId", "7")),), "CN=a+UID=7"),
        (((("commonName", " #lead+trail "),),), "CN=\\ #lead\\+trail\\ "),
        (((("emailAddress", "a@b"),),), "emailAddress=a@b"),
    ],
)
def test_rfc4514_name(subject: Any, expected: str) -> None:
    assert rfc4514_name(subject) == expected


async def _handshake(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> tuple[dict[str, Any] | None, str | None]:
    """One real TLS connection; returns (the server side's tls extension, the ALPN chosen)."""
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[Any] = loop.create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            seen.set_result(tls_extension(transport.get_extra_info("ssl_object")))

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        server = await loop.create_server(Probe, sock=sock.dup(), ssl=server_ctx)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1",
                server.sockets[0].getsockname()[1],
                ssl=client_ctx,
                server_hostname="localhost",
            ),
            5,
        )
        alpn = writer.get_extra_info("ssl_object").selected_alpn_protocol()
        extension = await asyncio.wait_for(seen, 5)
        writer.close()
        return extension, alpn
    finally:
        server.close()
        await server.wait_closed()


def _client(pki: Pki, *, with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.set_alpn_protocols(["h2", "http/1.1"])
    if with_cert:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


async def test_tls_extension_with_a_client_certificate(pki: Pki) -> None:
    server_ctx = make_ssl_context(_config(pki, ssl_cert_reqs="required", ssl_ca_certs=str(pki.ca)))
    assert server_ctx is not None
    extension, alpn = await _handshake(server_ctx, _client(pki, with_cert=True))
    assert alpn == "h2"  # http2 = "auto", the default: offered first
    assert extension is not None
    assert extension["server_cert"] == pki.cert.read_text()
    assert extension["client_cert_name"] == CLIENT_NAME
    assert extension["client_cert_error"] is None
    (client_pem,) = extension["client_cert_chain"]
    assert ssl.PEM_cert_to_DER_cert(client_pem) == ssl.PEM_cert_to_DER_cert(
        pki.client_cert.read_text()
    )
    assert extension["tls_version"] == 0x0304
    assert extension["cipher_suite"] in (0x1301, 0x1302, 0x1303)


async def test_tls_extension_without_a_client_certificate(pki: Pki) -> None:
    server_ctx = make_ssl_context(_config(pki, ssl_cert_reqs="optional", ssl_ca_certs=str(pki.ca)))
    assert server_ctx is not None
    client = _client(pki, with_cert=False)
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    extension, _ = await _handshake(server_ctx, client)
    assert extension is not None
    assert extension["client_cert_chain"] == []
    assert extension["client_cert_name"] is None
    assert extension["tls_version"] == 0x0303
    assert isinstance(extension["cipher_suite"], int)


async def test_required_client_certificate_is_enforced(pki: Pki) -> None:
    server_ctx = make_ssl_context(_config(pki, ssl_cert_reqs="required", ssl_ca_certs=str(pki.ca)))
    assert server_ctx is not None
    client = _client(pki, with_cert=False)
    client.maximum_version = ssl.TLSVersion.TLSv1_2  # 1.2: the refusal comes in the handshake
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await _handshake(server_ctx, client)


async def test_alpn_http1_only_when_http2_is_off(pki: Pki) -> None:
    server_ctx = make_ssl_context(_config(pki, http2="off"))
    assert server_ctx is not None
    _, alpn = await _handshake(server_ctx, _client(pki, with_cert=False))
    assert alpn == "http/1.1"
