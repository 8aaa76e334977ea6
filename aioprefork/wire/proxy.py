"""Who is the client really? Trusted-peer checks, Forwarded / X-Forwarded-*, PROXY protocol v1/v2.

Pure and internal: no sockets, no logging, no state beyond TrustedPeers' bounded per-host cache.
The HTTP protocol owns the I/O and calls in here:

* `TrustedPeers(limits.forwarded_allow_ips)` once per worker; `trusts(host)` per connection.
* `parse_proxy_protocol(buffer)` on the first bytes of a connection when `proxy_protocol` is on
  (haproxy doc/proxy-protocol.txt): None = need more bytes, else a ProxyHeader; anything that is
  not exactly a PROXY header raises RequestRejected(reason="proxy_protocol"), status 400.
* `resolve_forwarded(headers, client, scheme, trusted=peers, family=..., host=...)` per request,
  only for trusted peers.

The trust model (README, "Behind a proxy"): one header family is read, the one the operator's
proxy sets or overwrites (`proxy_headers_family`): X-Forwarded-For/-Proto by default, as nginx and
HAProxy's `option forwardfor` send them, or RFC 7239 `Forwarded` when the operator opts in. The
other family is ignored whole, because a proxy that does not know it passes a client's value
through untouched (HAProxy and nginx do with `Forwarded`). The forwarded host replaces Host only
when asked (`proxy_forwarded_host`): an app's own Host checks (Django's ALLOWED_HOSTS) stay
meaningful by default.

Invariants: headers from a peer are never trusted unless the caller checked `trusts()` first;
resolve_forwarded never raises on input (a malformed header is ignored as a whole, so the
connection's own peer stays the client); X-Forwarded-For / Forwarded chains are walked right to
left past trusted proxies (nginx real_ip_recursive), so entries a client prepends cannot win.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aioprefork.errors import RequestRejected

__all__ = [
    "FAMILIES",
    "FORWARDED",
    "X_FORWARDED",
    "ProxyHeader",
    "TrustedPeers",
    "parse_proxy_protocol",
    "resolve_forwarded",
]

Address = tuple[str, int]
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# --------------------------------------------------------------------------------------------
# Trusted peers
# --------------------------------------------------------------------------------------------

_CACHE_MAX: Final = 1024  # distinct peer addresses remembered per worker (bounded memory)


class TrustedPeers:
    """The forwarded_allow_ips set: IPs, CIDRs (v4/v6), "*" (every peer), "unix" (Unix sockets).

    Built once per worker; `trusts()` answers from a bounded per-host cache, so the per-connection
    cost is one dict lookup. An IPv4-mapped IPv6 peer (dual-stack listener) matches its IPv4 rule.
    """

    __slots__ = ("_all", "_cache", "_networks", "_unix")

    def __init__(self, allow: Sequence[str]) -> None:
        self._all = "*" in allow
        self._unix = self._all or "unix" in allow
        networks: list[_Network] = []
        for item in allow:
            if item in ("*", "unix"):
                continue
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        self._networks: tuple[_Network, ...] = tuple(networks)
        self._cache: dict[str, bool] = {}

    def trusts(self, host: str | None) -> bool:
        """Whether `host` (a peer IP string; None = a Unix-socket peer) may speak for clients."""
        if host is None:
            return self._unix
        if self._all:
            return True
        cached = self._cache.get(host)
        if cached is not None:
            return cached
        result = self._match(host)
        if len(self._cache) >= _CACHE_MAX:
            del self._cache[next(iter(self._cache))]  # drop the oldest entry (FIFO)
        self._cache[host] = result
        return result

    def _match(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False  # not an IP address (hostname, garbage): never trusted
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            mapped = ip.ipv4_mapped
            if any(mapped in net for net in self._networks):
                return True
        return any(ip in net for net in self._networks)


# --------------------------------------------------------------------------------------------
# Forwarded (RFC 7239) and X-Forwarded-*
# --------------------------------------------------------------------------------------------

X_FORWARDED: Final = "x-forwarded"  # X-Forwarded-For, -Proto (and -Host when asked)
FORWARDED: Final = "forwarded"  # RFC 7239 Forwarded: for=, proto= (and host= when asked)
FAMILIES: Final = (X_FORWARDED, FORWARDED)

_SCHEMES: Final = frozenset({"http", "https", "ws", "wss"})
_SECURE: Final = frozenset({"https", "wss"})
# A Host value (RFC 9110 section 7.2 / RFC 3986 authority without userinfo), no list commas.
_HOST_RE: Final = re.compile(
    rb"[A-Za-z0-9\-._~!$&'()*+;=%]+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?"
)
_TOKEN: Final = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PAIR_RE: Final = re.compile(
    rf"[ \t]*({_TOKEN})=({_TOKEN}|\"(?:[^\"\\\x00-\x08\x0a-\x1f\x7f]|\\[\t -~\x80-\xff])*\")[ \t]*"
)
_SEP_RE: Final = re.compile(r"[ \t]*([;,])[ \t]*")
_QUOTED_PAIR_RE: Final = re.compile(r"\\(.)")
_OBF_RE: Final = re.compile(r"_[A-Za-z0-9._\-]+")


def _ip(text: str) -> str | None:
    """`text` if it is a plain IPv4 or IPv6 address (strict inet_pton syntax), else None."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)
    except (OSError, ValueError):
        return None
    return text


def _port(text: str) -> int | None:
    if 0 < len(text) <= 5 and text.isascii() and text.isdigit():
        port = int(text)
        return port if port <= 65535 else None
    return None


def _xff_node(text: str) -> Address | None:
    """One X-Forwarded-For entry: 1.2.3.4, 1.2.3.4:80, 2001:db8::1 or [2001:db8::1]:80."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        host, rest = text[1:end], text[end + 1 :]
        if ":" not in host:
            return None
    elif text.count(":") == 1:
        host, _, tail = text.partition(":")
        rest = ":" + tail
    else:
        host, rest = text, ""
    if _ip(host) is None:
        return None
    if not rest:
        return host, 0
    port = _port(rest[1:]) if rest[0] == ":" else None
    return None if port is None else (host, port)


def _forwarded_node(text: str) -> Address | None:
    """A Forwarded for= node: an address, or None for "unknown"/obfuscated; ValueError if malformed."""
    if text.startswith("["):
        end = text.find("]")
        host, rest = text[1:end], text[end + 1 :]
        if end < 0 or ":" not in host or _ip(host) is None:
            raise ValueError(text)  # section 6: "[" IPv6address "]"
        known = True
    else:
        host, colon, port_text = text.partition(":")
        if ":" in port_text:
            raise ValueError(text)  # an unbracketed IPv6 address
        rest = colon + port_text
        known = host.lower() != "unknown" and _OBF_RE.fullmatch(host) is None
        if known and _ip(host) is None:
            raise ValueError(text)
    port = 0
    if rest:
        if rest[0] != ":":
            raise ValueError(text)
        if _OBF_RE.fullmatch(rest[1:]) is None:
            parsed = _port(rest[1:])
            if parsed is None:
                raise ValueError(text)
            port = parsed
    return (host, port) if known else None


def _parse_forwarded(value: str) -> list[dict[str, str]] | None:
    """Split a Forwarded field value into its elements (lower-cased names); None = malformed."""
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    pos, end = 0, len(value)
    while pos < end:
        match = _PAIR_RE.match(value, pos)
        if match is not None:
            name, raw = match.group(1).lower(), match.group(2)
            if name in current:
                return None  # a parameter MUST NOT occur twice in one element (section 4)
            if raw.startswith('"'):
                raw = _QUOTED_PAIR_RE.sub(r"\1", raw[1:-1])
            current[name] = raw
            pos = match.end()
            if pos >= end:
                break
        sep = _SEP_RE.match(value, pos)
        if sep is None:
            return None
        if sep.group(1) == ",":
            if current:
                elements.append(current)
            current = {}
        pos = sep.end()
    if current:
        elements.append(current)
    return elements


def _scheme_for(proto: str, scheme: str) -> str | None:
    """Map a forwarded proto onto the connection's kind (http/https or ws/wss); None = ignore."""
    proto = proto.strip().lower()
    if proto not in _SCHEMES:
        return None
    secure = proto in _SECURE
    if scheme in ("ws", "wss"):
        return "wss" if secure else "ws"
    return "https" if secure else "http"


def _host(value: str) -> bytes | None:
    raw = value.strip().encode("latin-1", "replace")
    return raw if raw and _HOST_RE.fullmatch(raw) else None


def _walk(nodes: Sequence[Address | None], trusted: TrustedPeers | None) -> int:
    """Index of the client in a proxy chain: the right-most node that is not a trusted proxy.

    Without a trusted set only the immediate (trusted) peer is believed: the right-most node.
    If every node is a trusted proxy, the left-most one is the client (nginx, uvicorn).
    """
    if trusted is None:
        return len(nodes) - 1
    for i in range(len(nodes) - 1, -1, -1):
        node = nodes[i]
        if node is None or not trusted.trusts(node[0]):
            return i
    return 0


def _from_forwarded(
    value: str, client: Address | None, scheme: str, trusted: TrustedPeers | None
) -> tuple[Address | None, str, bytes | None] | None:
    elements = _parse_forwarded(value)
    if not elements:
        return None
    nodes: list[Address | None] = []
    try:
        for element in elements:
            text = element.get("for")
            nodes.append(None if text is None else _forwarded_node(text))
    except ValueError:
        return None
    index = _walk(nodes, trusted)
    chosen, node = elements[index], nodes[index]
    new_client = node if node is not None else client
    proto = chosen.get("proto")
    new_scheme = (_scheme_for(proto, scheme) if proto is not None else None) or scheme
    host = chosen.get("host")
    return new_client, new_scheme, _host(host) if host is not None else None


def resolve_forwarded(
    headers: Sequence[tuple[bytes, bytes]],
    client: tuple[str, int] | None,
    scheme: str,
    *,
    trusted: TrustedPeers | None = None,
    family: str = X_FORWARDED,
    host: bool = False,
) -> tuple[tuple[str, int] | None, str, bytes | None]:
    """(client, scheme, forwarded_host or None) as a trusted peer reports them.

    Call only when `TrustedPeers.trusts(peer)`. `headers` are raw with lower-cased names.
    Only `family`'s headers are read (X_FORWARDED or FORWARDED); the other family is ignored
    whole. The forwarded host is returned only with `host=True`. Pass `trusted` to walk the
    chain past further trusted proxies (real_ip_recursive); without it only the peer's own entry
    (the right-most) is believed. A malformed header is ignored, never raised.
    """
    if family == FORWARDED:
        forwarded = [value for name, value in headers if name == b"forwarded"]
        if forwarded:
            joined = b",".join(forwarded).decode("latin-1")
            result = _from_forwarded(joined, client, scheme, trusted)
            if result is not None:
                new_client, new_scheme, new_host = result
                return new_client, new_scheme, new_host if host else None
        return client, scheme, None

    xff: list[bytes] = []
    xfp: bytes | None = None
    xfh: bytes | None = None
    for name, value in headers:
        if name == b"x-forwarded-for":
            xff.append(value)
        elif name == b"x-forwarded-proto":
            xfp = value  # the last field line wins, like the right-most list entry
        elif name == b"x-forwarded-host":
            xfh = value
    new_client = client
    if xff:
        nodes: list[Address | None] = []
        for part in b",".join(xff).decode("latin-1").split(","):
            part = part.strip(" \t")
            if not part:
                continue  # RFC 9110 section 5.6.1: empty list elements are ignored
            node = _xff_node(part)
            if node is None:
                nodes = []
                break  # malformed: ignore the whole header, keep the peer
            nodes.append(node)
        if nodes:
            new_client = nodes[_walk(nodes, trusted)]
    new_scheme = scheme
    if xfp is not None:
        proto = xfp.decode("latin-1").rpartition(",")[2]
        new_scheme = _scheme_for(proto, scheme) or scheme
    new_host = None
    if host and xfh is not None:
        new_host = _host(xfh.decode("latin-1").rpartition(",")[2])
    return new_client, new_scheme, new_host


# --------------------------------------------------------------------------------------------
# PROXY protocol (haproxy doc/proxy-protocol.txt)
# --------------------------------------------------------------------------------------------

V1_PREFIX: Final = b"PROXY "
V1_MAX: Final = 107  # "PROXY UNKNOWN ffff:...:ffff ffff:...:ffff 65535 65535\r\n" (section 2.1)
V2_SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEADER: Final = 16  # signature, ver_cmd, fam, len (section 2.2)
# address family -> bytes of the address block (section 2.2): UNSPEC, INET, INET6, UNIX
_V2_ADDR_LEN: Final = (0, 12, 36, 216)
_AF_INET: Final = 1
_AF_INET6: Final = 2
_STREAM: Final = 1


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed PROXY header: strip `consumed` bytes, then use `source` as the client (if any)."""

    consumed: int  # bytes of the header to strip from the stream
    source: tuple[str, int] | None  # None for v2 LOCAL / UNSPEC / UNIX, v1 UNKNOWN
    dest: tuple[str, int] | None


def _reject(detail: str) -> RequestRejected:
    return RequestRejected(f"PROXY protocol: {detail}", status=400, reason="proxy_protocol")


def parse_proxy_protocol(data: bytes | bytearray) -> ProxyHeader | None:
    """Parse a PROXY v1 or v2 header at the start of `data`; None = need more bytes.

    Raises RequestRejected(reason="proxy_protocol") as soon as the bytes cannot be a valid header
    (section 2: "any sequence which does not exactly match the protocol must be discarded").
    """
    first = data[:1]
    if first == b"P":
        return _parse_v1(data)
    if first == b"\r":
        return _parse_v2(data)
    if not first:
        return None
    raise _reject("connection does not start with a PROXY header")


def _v1_ip(text: bytes, family: int) -> str:
    try:
        host = text.decode("ascii")
        packed = socket.inet_pton(family, host)
    except (OSError, ValueError):
        raise _reject(f"bad address {text[:40]!r}") from None
    # Canonical form only: inet_pton already refuses IPv4 leading zeros, IPv6 scope ids.
    return socket.inet_ntop(family, packed)


def _v1_port(text: bytes) -> int:
    # Decimal 0..65535 with no leading zeros (section 2.1).
    if not (0 < len(text) <= 5 and text.isdigit()) or (len(text) > 1 and text[:1] == b"0"):
        raise _reject(f"bad port {text[:10]!r}")
    port = int(text)
    if port > 65535:
        raise _reject(f"port {port} out of range")
    return port


def _parse_v1(data: bytes | bytearray) -> ProxyHeader | None:
    if len(data) < len(V1_PREFIX):
        if V1_PREFIX.startswith(data):
            return None
        raise _reject("bad v1 signature")
    if data[:6] != V1_PREFIX:
        raise _reject("bad v1 signature")
    lf = data.find(b"\n", 0, V1_MAX)
    if lf < 0:
        if len(data) >= V1_MAX:
            raise _reject(f"no CRLF within the first {V1_MAX} bytes")
        return None
    if data[lf - 1] != 0x0D:
        raise _reject("line ends in a bare LF, not CRLF")
    line = bytes(data[6 : lf - 1])
    if line == b"UNKNOWN" or line.startswith(b"UNKNOWN "):
        return ProxyHeader(consumed=lf + 1, source=None, dest=None)  # rest is ignored
    fields = line.split(b" ")
    if len(fields) != 5:
        raise _reject("v1 line needs exactly: protocol, 2 addresses, 2 ports")
    proto, src, dst, sport, dport = fields
    if proto == b"TCP4":
        family = socket.AF_INET
    elif proto == b"TCP6":
        family = socket.AF_INET6
    else:
        raise _reject(f"unknown v1 protocol {proto[:10]!r}")
    src_host, dst_host = _v1_ip(src, family), _v1_ip(dst, family)
    return ProxyHeader(
        consumed=lf + 1,
        source=(src_host, _v1_port(sport)),
        dest=(dst_host, _v1_port(dport)),
    )


def _parse_v2(data: bytes | bytearray) -> ProxyHeader | None:
    n = len(data)
    if n < V2_HEADER:
        if n <= 12:
            if V2_SIGNATURE.startswith(data):
                return None
            raise _reject("bad v2 signature")
        if data[:12] != V2_SIGNATURE:
            raise _reject("bad v2 signature")
        if data[12] >> 4 != 2:
            raise _reject(f"unsupported version {data[12] >> 4}")
        return None
    if data[:12] != V2_SIGNATURE:
        raise _reject("bad v2 signature")
    ver_cmd, fam = data[12], data[13]
    if ver_cmd >> 4 != 2:
        raise _reject(f"unsupported version {ver_cmd >> 4}")
    command = ver_cmd & 0x0F
    if command > 1:
        raise _reject(f"unknown command {command}")
    family, proto = fam >> 4, fam & 0x0F
    if family > 3 or proto > 2:
        raise _reject(f"unknown address family/protocol 0x{fam:02x}")
    length = (data[14] << 8) | data[15]
    total = V2_HEADER + length
    if n < total:
        return None
    if command == 0:  # LOCAL: a health check; use the real endpoints, ignore the block
        return ProxyHeader(consumed=total, source=None, dest=None)
    if family == 0 or proto == 0:  # UNSPEC: "the receiver should ignore address information"
        return ProxyHeader(consumed=total, source=None, dest=None)
    addr_len = _V2_ADDR_LEN[family]
    if length < addr_len:
        raise _reject(f"address block of {length} bytes, family needs {addr_len}")
    _check_tlvs(data, V2_HEADER + addr_len, total)
    if proto != _STREAM or family not in (_AF_INET, _AF_INET6):
        # UNIX and datagram: fall back to the real endpoints, as for UNSPEC (section 2.2).
        return ProxyHeader(consumed=total, source=None, dest=None)
    af, size = (socket.AF_INET, 4) if family == _AF_INET else (socket.AF_INET6, 16)
    src = socket.inet_ntop(af, bytes(data[16 : 16 + size]))
    dst = socket.inet_ntop(af, bytes(data[16 + size : 16 + 2 * size]))
    ports = 16 + 2 * size
    sport = (data[ports] << 8) | data[ports + 1]
    dport = (data[ports + 2] << 8) | data[ports + 3]
    return ProxyHeader(consumed=total, source=(src, sport), dest=(dst, dport))


def _check_tlvs(data: bytes | bytearray, pos: int, end: int) -> None:
    """Walk the TLVs after the addresses (skipped, not interpreted); reject bad framing."""
    while pos < end:
        if pos + 3 > end:
            raise _reject("truncated TLV header")
        pos += 3 + ((data[pos + 1] << 8) | data[pos + 2])
        if pos > end:
            raise _reject("TLV runs past the header length")
