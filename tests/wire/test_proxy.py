"""wire/proxy.py: trusted peers, Forwarded / X-Forwarded-*, PROXY protocol v1 and v2."""

from __future__ import annotations

import socket
import struct

import pytest

from aioprefork.errors import RequestRejected
from aioprefork.wire.proxy import (
    FORWARDED,
    X_FORWARDED,
    ProxyHeader,
    TrustedPeers,
    parse_proxy_protocol,
    resolve_forwarded,
)

# ---------------------------------------------------------------------------------------------
# TrustedPeers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allow", "host", "expected"),
    [
        (["127.0.0.1"], "127.0.0.1", True),
        (["127.0.0.1"], "127.0.0.2", False),
        (["10.0.0.0/8"], "10.200.3.4", True),
        (["10.0.0.0/8"], "11.0.0.1", False),
        (["2001:db8::/32"], "2001:db8:1::5", True),
        (["2001:db8::/32"], "2001:db9::1", False),
        (["::1"], "::1", True),
        (["127.0.0.1"], "::ffff:127.0.0.1", True),  # dual-stack listener
        (["127.0.0.1"], "::1", False),
        (["*"], "203.0.113.9", True),
        (["*"], None, True),
        (["unix"], None, True),
        (["unix"], "127.0.0.1", False),
        (["127.0.0.1"], None, False),
        (["127.0.0.1"], "not-an-ip", False),
        (["127.0.0.1"], "", False),
        ([], "127.0.0.1", False),
        (["192.168.1.7/24"], "192.168.1.99", True),  # host bits tolerated like the config layer
    ],
)
def test_trusts(allow: list[str], host: str | None, expected: bool) -> None:
    peers = TrustedPeers(allow)
    assert peers.trusts(host) is expected
    assert peers.trusts(host) is expected  # second answer comes from the cache


def test_trusts_cache_is_bounded() -> None:
    peers = TrustedPeers(["10.0.0.0/8"])
    for i in range(5000):
        assert peers.trusts(f"10.{i // 256 % 256}.{i % 256}.1") is True
        assert peers.trusts(f"11.0.{i // 256 % 256}.{i % 256}") is False
    assert len(peers._cache) <= 1024


def test_bad_allow_entry_raises() -> None:
    with pytest.raises(ValueError):
        TrustedPeers(["not a network"])


# ---------------------------------------------------------------------------------------------
# resolve_forwarded
# ---------------------------------------------------------------------------------------------

PEER = ("127.0.0.1", 5000)
LOCAL = TrustedPeers(["127.0.0.1", "10.0.0.0/8", "::1"])


def _resolve(
    *headers: tuple[bytes, bytes],
    scheme: str = "http",
    trusted: TrustedPeers | None = LOCAL,
    family: str = X_FORWARDED,
    host: bool = True,
) -> tuple[tuple[str, int] | None, str, bytes | None]:
    return resolve_forwarded(list(headers), PEER, scheme, trusted=trusted, family=family, host=host)


def _forwarded(
    *headers: tuple[bytes, bytes], host: bool = True
) -> tuple[tuple[str, int] | None, str, bytes | None]:
    return _resolve(*headers, family=FORWARDED, host=host)


def test_no_proxy_headers_keeps_peer() -> None:
    assert _resolve((b"host", b"example.com")) == (PEER, "http", None)


def test_positional_call_without_trusted_set() -> None:
    # The 3-argument form believes only the immediate peer's entry (the right-most).
    got = resolve_forwarded([(b"x-forwarded-for", b"1.1.1.1, 10.0.0.2")], PEER, "http")
    assert got == (("10.0.0.2", 0), "http", None)


@pytest.mark.parametrize(
    ("xff", "client"),
    [
        (b"203.0.113.7", ("203.0.113.7", 0)),
        (b"203.0.113.7, 10.0.0.2", ("203.0.113.7", 0)),  # skip our own trusted proxy
        (b"198.51.100.1, 203.0.113.7, 10.0.0.2, 10.0.0.3", ("203.0.113.7", 0)),
        (b"10.0.0.5, 10.0.0.2", ("10.0.0.5", 0)),  # all trusted: the left-most
        (b"2001:db8::1", ("2001:db8::1", 0)),
        (b"[2001:db8::1]:4711", ("2001:db8::1", 4711)),
        (b"203.0.113.7:8080", ("203.0.113.7", 8080)),
        (b"  203.0.113.7 ,, 10.0.0.2 ", ("203.0.113.7", 0)),  # OWS and empty elements
    ],
)
def test_x_forwarded_for(xff: bytes, client: tuple[str, int]) -> None:
    assert _resolve((b"x-forwarded-for", xff)) == (client, "http", None)


def test_x_forwarded_for_spoof_prepended_entries_lose() -> None:
    # The client sends "X-Forwarded-For: 127.0.0.1" hoping to look local; our proxy appends
    # the address it really saw. Walking right to left finds the real one first.
    one: tuple[tuple[bytes, bytes], ...] = ((b"x-forwarded-for", b"127.0.0.1, 6.6.6.6"),)
    assert _resolve(*one)[0] == ("6.6.6.6", 0)
    two = ((b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-for", b"6.6.6.6"))
    assert _resolve(*two)[0] == ("6.6.6.6", 0)  # several field lines join in order


@pytest.mark.parametrize(
    "xff",
    [
        b"unknown",
        b"203.0.113.7, garbage",
        b"999.1.1.1",
        b"01.2.3.4",
        b"1.2.3.4:99999",
        b"1.2.3.4:",
        b"[2001:db8::1",
        b"[1.2.3.4]",
        b"fe80::1%eth0",
        b"1.2.3.4\x00",
        b"\xff\xfe",
        b"example.com",
        b",",
    ],
)
def test_x_forwarded_for_malformed_keeps_peer(xff: bytes) -> None:
    assert _resolve((b"x-forwarded-for", xff)) == (PEER, "http", None)


@pytest.mark.parametrize(
    ("proto", "scheme", "expected"),
    [
        (b"https", "http", "https"),
        (b"HTTPS", "http", "https"),
        (b" http ", "https", "http"),
        (b"wss", "http", "https"),  # mapped onto the connection's kind
        (b"https", "ws", "wss"),
        (b"http", "wss", "ws"),
        (b"ftp", "http", "http"),  # anything else ignored
        (b"https\r\nx", "http", "http"),
        (b"", "http", "http"),
        (b"http, https", "http", "https"),  # list: the right-most entry
    ],
)
def test_x_forwarded_proto(proto: bytes, scheme: str, expected: str) -> None:
    assert _resolve((b"x-forwarded-proto", proto), scheme=scheme) == (PEER, expected, None)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (b"example.com", b"example.com"),
        (b"example.com:8443", b"example.com:8443"),
        (b"[2001:db8::1]:443", b"[2001:db8::1]:443"),
        (b"a.example, b.example", b"b.example"),
        (b"evil.com\r\nX-Injected: 1", None),
        (b"exa mple.com", None),
        (b"", None),
        (b"host/path", None),
    ],
)
def test_x_forwarded_host(host: bytes, expected: bytes | None) -> None:
    assert _resolve((b"x-forwarded-host", host)) == (PEER, "http", expected)


def test_all_x_forwarded_together() -> None:
    got = _resolve(
        (b"x-forwarded-for", b"203.0.113.7"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"shop.example"),
    )
    assert got == (("203.0.113.7", 0), "https", b"shop.example")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"for=192.0.2.60", (("192.0.2.60", 0), "http", None)),
        (b'for="192.0.2.60:4711"', (("192.0.2.60", 4711), "http", None)),
        (b'For="[2001:db8:cafe::17]:4711"', (("2001:db8:cafe::17", 4711), "http", None)),
        (b'for="[2001:db8::1]"', (("2001:db8::1", 0), "http", None)),
        (b'for="[::1]:80"', (("::1", 80), "http", None)),  # trusted but the only one
        (
            b"for=192.0.2.60;proto=https;by=203.0.113.43;host=example.com",
            (("192.0.2.60", 0), "https", b"example.com"),
        ),
        (b"for=192.0.2.43, for=198.51.100.17", (("198.51.100.17", 0), "http", None)),
        (b"for=192.0.2.43, for=10.0.0.7", (("192.0.2.43", 0), "http", None)),  # skip trusted
        (b"for=unknown;proto=https", (PEER, "https", None)),
        (b"for=_hidden;proto=https", (PEER, "https", None)),
        (b'for="_gazonk:_port"', (PEER, "http", None)),
        (b'for="192.0.2.1:_obf"', (("192.0.2.1", 0), "http", None)),
        (b"proto=https", (PEER, "https", None)),
        (b"for=192.0.2.60 ; proto=https", (("192.0.2.60", 0), "https", None)),
        (
            b'for=192.0.2.60;host="example.com:8080"',
            (("192.0.2.60", 0), "http", b"example.com:8080"),
        ),
        (b"for=192.0.2.60;proto=gopher", (("192.0.2.60", 0), "http", None)),
        (b'for="192.0.2.60";host="bad host"', (("192.0.2.60", 0), "http", None)),
        (b'for="\\1\\9\\2.0.2.60"', (("192.0.2.60", 0), "http", None)),  # quoted-pair
        (b"for=192.0.2.1,,for=192.0.2.2", (("192.0.2.2", 0), "http", None)),
    ],
)
def test_forwarded(value: bytes, expected: object) -> None:
    assert _forwarded((b"forwarded", value)) == expected


def test_forwarded_proto_and_host_come_from_the_chosen_element() -> None:
    value = b"for=203.0.113.5;proto=https;host=front.example, for=10.0.0.7;proto=http;host=mid"
    assert _forwarded((b"forwarded", value)) == (("203.0.113.5", 0), "https", b"front.example")


BOTH_FAMILIES = (
    (b"x-forwarded-for", b"198.51.100.9"),
    (b"x-forwarded-proto", b"http"),
    (b"x-forwarded-host", b"xfh.example"),
    (b"forwarded", b"for=192.0.2.60;proto=https;host=fwd.example"),
)


@pytest.mark.parametrize(
    ("headers", "family", "host", "expected"),
    [
        # only the chosen family is read: a proxy that overwrites one passes the other through
        (BOTH_FAMILIES, X_FORWARDED, False, (("198.51.100.9", 0), "http", None)),
        (BOTH_FAMILIES, X_FORWARDED, True, (("198.51.100.9", 0), "http", b"xfh.example")),
        (BOTH_FAMILIES, FORWARDED, False, (("192.0.2.60", 0), "https", None)),
        (BOTH_FAMILIES, FORWARDED, True, (("192.0.2.60", 0), "https", b"fwd.example")),
        # a client's Forwarded through an X-Forwarded proxy (HAProxy option forwardfor)
        (
            ((b"forwarded", b"for=6.6.6.6;proto=https"), (b"x-forwarded-for", b"203.0.113.7")),
            X_FORWARDED,
            False,
            (("203.0.113.7", 0), "http", None),
        ),
        (((b"forwarded", b"for=6.6.6.6;proto=https"),), X_FORWARDED, True, (PEER, "http", None)),
        # a client's X-Forwarded-* through a Forwarded proxy
        (
            ((b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-proto", b"https")),
            FORWARDED,
            True,
            (PEER, "http", None),
        ),
        # X-Forwarded-Host / host= replace Host only when asked
        (((b"x-forwarded-host", b"evil.example"),), X_FORWARDED, False, (PEER, "http", None)),
        (((b"forwarded", b"host=evil.example"),), FORWARDED, False, (PEER, "http", None)),
    ],
)
def test_only_the_trusted_family_is_read(
    headers: tuple[tuple[bytes, bytes], ...],
    family: str,
    host: bool,
    expected: object,
) -> None:
    assert _resolve(*headers, family=family, host=host) == expected


def test_defaults_read_x_forwarded_without_host() -> None:
    headers = [(b"x-forwarded-host", b"a.example"), (b"forwarded", b"for=6.6.6.6;proto=https")]
    headers.append((b"x-forwarded-for", b"203.0.113.7"))
    got = resolve_forwarded(headers, PEER, "http", trusted=LOCAL)
    assert got == (("203.0.113.7", 0), "http", None)


def test_forwarded_multiple_field_lines_join() -> None:
    got = _forwarded((b"forwarded", b"for=192.0.2.1"), (b"forwarded", b"for=192.0.2.2"))
    assert got[0] == ("192.0.2.2", 0)


@pytest.mark.parametrize(
    "value",
    [
        b"for=2001:db8::1",  # IPv6 must be bracketed and quoted
        b'for="2001:db8::1"',
        b'for="[2001:db8::1"',
        b'for="[192.0.2.1]"',
        b"for=192.0.2.60;for=192.0.2.61",  # parameter twice in one element
        b"for 192.0.2.60",
        b"for=",
        b'for="unterminated',
        b"for=192.0.2.60;proto",
        b"=192.0.2.60",
        b"for=999.0.2.60",
        b'for="192.0.2.60:65536"',
        b'for="192.0.2.60:"',
        b"for=\x00",
        b'for="a\x01b"',
    ],
)
def test_forwarded_malformed_is_ignored(value: bytes) -> None:
    # Ignored as a whole (and never a reason to fall back on the other family).
    assert _forwarded((b"forwarded", value)) == (PEER, "http", None)
    got = _forwarded((b"forwarded", value), (b"x-forwarded-for", b"203.0.113.1"))
    assert got == (PEER, "http", None)


def test_forwarded_spoof_prepended_elements_lose() -> None:
    value = b"for=127.0.0.1;proto=https, for=6.6.6.6;proto=http"
    assert _forwarded((b"forwarded", value)) == (("6.6.6.6", 0), "http", None)


def test_unix_peer_client_none() -> None:
    got = resolve_forwarded([(b"x-forwarded-for", b"203.0.113.7")], None, "http", trusted=LOCAL)
    assert got == (("203.0.113.7", 0), "http", None)
    assert resolve_forwarded([], None, "https") == (None, "https", None)


def test_hostile_sizes_do_not_raise() -> None:
    huge = b", ".join([b"10.0.0.1"] * 5000) + b", 203.0.113.9"
    assert _resolve((b"x-forwarded-for", huge))[0] == ("203.0.113.9", 0)
    assert _resolve((b"forwarded", b"for=" + b"a" * 100_000))[0] == PEER
    assert _resolve((b"forwarded", b'for="' + b"\\" * 50_001))[0] == PEER
    assert _resolve((b"x-forwarded-host", b"h" * 100_000))[2] == b"h" * 100_000


# ---------------------------------------------------------------------------------------------
# PROXY protocol v1
# ---------------------------------------------------------------------------------------------

V1_TCP4 = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"
V1_TCP6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n"
V1_MAX = b"PROXY UNKNOWN " + b"ffff:" * 7 + b"ffff " + b"ffff:" * 7 + b"ffff 65535 65535\r\n"


def test_v1_tcp4() -> None:
    data = V1_TCP4 + b"GET / HTTP/1.1\r\n"
    assert parse_proxy_protocol(data) == ProxyHeader(
        consumed=len(V1_TCP4), source=("192.168.0.1", 56324), dest=("192.168.0.11", 443)
    )
    assert parse_proxy_protocol(bytearray(data)) == parse_proxy_protocol(data)


def test_v1_tcp6() -> None:
    assert parse_proxy_protocol(V1_TCP6) == ProxyHeader(
        consumed=len(V1_TCP6), source=("2001:db8::1", 65535), dest=("2001:db8::2", 0)
    )


def test_v1_tcp6_canonicalised() -> None:
    header = parse_proxy_protocol(b"PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::ffff:1.2.3.4 1 2\r\n")
    assert header is not None
    assert header.source == ("2001:db8::1", 1)
    assert header.dest == ("::ffff:1.2.3.4", 2)


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY UNKNOWN\r\n",
        b"PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY UNKNOWN junk\r\n",
        V1_MAX,
    ],
)
def test_v1_unknown(line: bytes) -> None:
    assert len(V1_MAX) == 107
    assert parse_proxy_protocol(line + b"rest") == ProxyHeader(
        consumed=len(line), source=None, dest=None
    )


def test_v1_every_prefix_needs_more() -> None:
    for line in (V1_TCP4, V1_TCP6, V1_MAX):
        for i in range(len(line)):
            assert parse_proxy_protocol(line[:i]) is None, line[:i]


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"PROXX",
        b"PROXY\r\n",
        b"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",  # bare LF
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
        b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",  # two spaces
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",  # leading zero
        b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",  # family mismatch
        b"PROXY TCP6 1.2.3.4 2001:db8::2 1 2\r\n",
        b"PROXY TCP6 fe80::1%eth0 2001:db8::2 1 2\r\n",
        b"PROXY TCP6 1::2::3 2001:db8::2 1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n",
        b"PROXY TCP4 1.2.3.\xb4 5.6.7.8 1 2\r\n",
        b"PROXY TCP4 1.2.3.4\x00 5.6.7.8 1 2\r\n",
        b"PROXY UNKNOWNX\r\n",
        b"PROXY \r\n",
        V1_MAX[:-2] + b"0\r\n",  # 108 bytes: CRLF not within the first 107
        b"PROXY " + b"A" * 200,  # no CRLF at all, hostile length
    ],
)
def test_v1_malformed(data: bytes) -> None:
    with pytest.raises(RequestRejected) as info:
        parse_proxy_protocol(data)
    assert info.value.status == 400
    assert info.value.reason == "proxy_protocol"


def test_empty_needs_more() -> None:
    assert parse_proxy_protocol(b"") is None


# ---------------------------------------------------------------------------------------------
# PROXY protocol v2
# ---------------------------------------------------------------------------------------------

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(ver_cmd: int, fam: int, block: bytes, length: int | None = None) -> bytes:
    n = len(block) if length is None else length
    return SIG + bytes([ver_cmd, fam]) + struct.pack("!H", n) + block


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


INET = socket.inet_pton(socket.AF_INET, "10.1.2.3") + socket.inet_pton(socket.AF_INET, "10.9.9.9")
INET_PORTS = INET + struct.pack("!HH", 51234, 443)
INET6 = socket.inet_pton(socket.AF_INET6, "2001:db8::17") + socket.inet_pton(
    socket.AF_INET6, "2001:db8::1"
)
INET6_PORTS = INET6 + struct.pack("!HH", 4711, 80)


def test_v2_tcp4() -> None:
    data = v2(0x21, 0x11, INET_PORTS)
    assert parse_proxy_protocol(data + b"GET /") == ProxyHeader(
        consumed=28, source=("10.1.2.3", 51234), dest=("10.9.9.9", 443)
    )


def test_v2_tcp6() -> None:
    data = v2(0x21, 0x21, INET6_PORTS)
    assert parse_proxy_protocol(data) == ProxyHeader(
        consumed=52, source=("2001:db8::17", 4711), dest=("2001:db8::1", 80)
    )


def test_v2_aws_nlb_tlvs_skipped() -> None:
    # AWS NLB: TCP4 plus a custom TLV 0xEA (VPC endpoint id) and NOOP padding.
    tlvs = tlv(0xEA, b"\x01vpce-0123456789abcdef0") + tlv(0x04, b"\x00" * 5)
    data = v2(0x21, 0x11, INET_PORTS + tlvs)
    header = parse_proxy_protocol(data + b"payload")
    assert header == ProxyHeader(
        consumed=len(data), source=("10.1.2.3", 51234), dest=("10.9.9.9", 443)
    )


def test_v2_haproxy_ssl_tlv() -> None:
    ssl = tlv(0x20, b"\x01\x00\x00\x00\x00" + tlv(0x21, b"TLSv1.3"))
    data = v2(0x21, 0x21, INET6_PORTS + tlv(0x01, b"h2") + tlv(0x02, b"example.com") + ssl)
    header = parse_proxy_protocol(data)
    assert header is not None and header.consumed == len(data)
    assert header.source == ("2001:db8::17", 4711)


@pytest.mark.parametrize(
    "data",
    [
        v2(0x20, 0x00, b""),  # LOCAL health check
        v2(0x20, 0x11, INET_PORTS),  # LOCAL: addresses ignored
        v2(0x20, 0x11, b"\x00" * 7),  # LOCAL: block ignored, even when it makes no sense
        v2(0x21, 0x00, b""),  # PROXY over UNSPEC
        v2(0x21, 0x00, b"whatever"),
        v2(0x21, 0x10, INET),  # AF_INET, UNSPEC transport
        v2(0x21, 0x12, INET_PORTS),  # UDP: falls back to the real endpoints
        v2(0x21, 0x31, b"/tmp/a".ljust(108, b"\x00") + b"/tmp/b".ljust(108, b"\x00")),
        v2(0x21, 0x32, b"\x00" * 216 + tlv(0x04, b"")),
    ],
)
def test_v2_without_addresses(data: bytes) -> None:
    assert parse_proxy_protocol(data + b"GET") == ProxyHeader(
        consumed=len(data), source=None, dest=None
    )


def test_v2_every_prefix_needs_more() -> None:
    data = v2(0x21, 0x11, INET_PORTS + tlv(0xEA, b"abc"))
    for i in range(len(data)):
        assert parse_proxy_protocol(data[:i]) is None, i


def test_v2_max_length_header() -> None:
    block = INET_PORTS + tlv(0x04, b"\x00" * (65535 - 12 - 3))
    data = v2(0x21, 0x11, block)
    assert len(data) == 16 + 65535
    assert parse_proxy_protocol(data[:-1]) is None
    header = parse_proxy_protocol(data)
    assert header is not None and header.consumed == len(data)


@pytest.mark.parametrize(
    "data",
    [
        SIG[:5] + b"X",
        b"\r\n\r\nGET",
        b"\r\nGET / HTTP/1.1\r\n",
        SIG[:-1] + b"X" + b"\x21\x11\x00\x0c" + INET_PORTS,
        SIG + b"\x11",  # version 1 in the binary header
        SIG + b"\x31\x11\x00\x0c" + INET_PORTS,  # version 3
        v2(0x22, 0x11, INET_PORTS),  # command 2
        v2(0x2F, 0x11, INET_PORTS),
        v2(0x21, 0x41, INET_PORTS),  # family 4
        v2(0x21, 0x13, INET_PORTS),  # transport 3
        v2(0x21, 0x11, INET_PORTS[:-1]),  # block shorter than an IPv4 address pair
        v2(0x21, 0x21, INET_PORTS),  # IPv6 needs 36 bytes
        v2(0x21, 0x31, b"\x00" * 215),  # UNIX needs 216
        v2(0x21, 0x11, INET_PORTS + b"\x04\x00"),  # truncated TLV header
        v2(0x21, 0x11, INET_PORTS + b"\x04\x00\x05abc"),  # TLV runs past the end
        v2(0x21, 0x11, INET_PORTS + tlv(0x04, b"") + b"\x01"),
    ],
)
def test_v2_malformed(data: bytes) -> None:
    with pytest.raises(RequestRejected) as info:
        parse_proxy_protocol(data)
    assert info.value.status == 400
    assert info.value.reason == "proxy_protocol"


@pytest.mark.parametrize("first", [b"\x16\x03\x01", b"\x00", b"G", b" PROXY", b"\xff" * 20])
def test_not_a_proxy_header(first: bytes) -> None:
    with pytest.raises(RequestRejected, match="PROXY protocol"):
        parse_proxy_protocol(first)
