"""HPACK (RFC 7541): the header compression of HTTP/2, strict decoding and a cheap encoder.

One Decoder and one Encoder per connection (each side's dynamic table is connection state).

The decoder rejects every malformation with HpackError, which the connection answers with
COMPRESSION_ERROR: integers beyond 2^32 - 1 or longer than five continuation octets, index 0 or
beyond the tables, invalid Huffman (EOS inside, padding over seven bits or not all ones), a block
cut short, a dynamic table size update after a field, above the size we advertised, or more than
two in one block. A decoded list bigger than `max_header_list_size` (counted as RFC 9113 section
6.5.2 does: name + value + 32 per field) raises HeaderListTooLarge once the whole block is read:
the fields past the limit are never kept (an HPACK bomb of references to one big table entry
costs a counter per byte), while the dynamic table still follows the block, so the connection
stays usable and the stream alone can be refused (431 or RST_STREAM).

The encoder runs once per response. Fields equal to a static entry are one byte; fields it has
indexed before are one or two bytes (a dict lookup by name, then a comparison of values); a new
field is indexed unless its value is per-request (:path, content-length, etag...; nghttp2's
choice) or too big for the table. Sensitive fields (authorization, cookie, set-cookie...) are
sent never-indexed, so no intermediary indexes them either.

String literals are memoised per worker, shared by its connections: their encodings (Huffman
unless longer) on the way out, their Huffman decodings on the way in. Credentials never go
through a memo: whether a lookup hit must not tell one connection what another sent.
"""

from __future__ import annotations

from typing import Final, cast, final

from aioprefork.http.h2 import huffman
from aioprefork.wire.memo import remember

__all__ = [
    "PER_REQUEST",
    "SENSITIVE",
    "Decoder",
    "Encoder",
    "Header",
    "HeaderListTooLarge",
    "HpackError",
]

Header = tuple[bytes, bytes]
# Inside, a field is typed as a tuple of any length: mypyc keeps such a tuple as the object it is,
# where a tuple[bytes, bytes] is unpacked into a C struct and boxed again (a new tuple) each time
# it goes into a list or a dict.
_Field = tuple[bytes, ...]

MAX_INTEGER: Final = (1 << 32) - 1
DEFAULT_TABLE_SIZE: Final = 4096  # SETTINGS_HEADER_TABLE_SIZE until the peer says otherwise
ENTRY_OVERHEAD: Final = 32  # per entry, in table sizes and header list sizes alike

# RFC 7541 Appendix A; index 1 is STATIC_TABLE[0].
STATIC_TABLE: Final[list[_Field]] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
]
STATIC_LENGTH: Final = 61
FIRST_DYNAMIC: Final = STATIC_LENGTH + 1

# Never indexed by default: credentials and what identifies a user across requests.
SENSITIVE: Final = frozenset((b"authorization", b"proxy-authorization", b"cookie", b"set-cookie"))
# Sent without indexing: values that rarely repeat would only churn the table (nghttp2's list).
PER_REQUEST: Final = frozenset(
    (
        b":path",
        b"age",
        b"content-length",
        b"etag",
        b"if-modified-since",
        b"if-none-match",
        b"location",
    )
)


def _static_names() -> dict[bytes, int]:
    names: dict[bytes, int] = {}
    for position, header in enumerate(STATIC_TABLE):
        names.setdefault(header[0], position + 1)
    return names


def _static_values() -> dict[bytes, dict[bytes, int]]:
    values: dict[bytes, dict[bytes, int]] = {}
    for position, header in enumerate(STATIC_TABLE):
        if header[1]:
            values.setdefault(header[0], {})[header[1]] = position + 1
    return values


# The static index of a name (its first entry), and of the fields that have a value, by name.
_STATIC_NAMES: Final = _static_names()
_STATIC_VALUES: Final = _static_values()
_NO_VALUES: Final[dict[bytes, int]] = {}  # never written to

# The string literal (length prefix, Huffman unless longer) of names and short values, shared by
# every encoder of the worker: bounded, cleared when full (wire/memo.py).
_STRINGS: Final[dict[bytes, bytes]] = {}
_STRINGS_LIMIT: Final = 512
_STRING_MEMO_MAX: Final = 256  # longer strings are encoded each time
# Huffman strings decoded, the same way (the names and values that recur: user-agent, paths...).
_DECODED: Final[dict[bytes, bytes]] = {}
_DECODED_LIMIT: Final = 512
_DECODED_MEMO_MAX: Final = 128


class HpackError(Exception):
    """A header block that does not decode: the connection's COMPRESSION_ERROR."""


class HeaderListTooLarge(HpackError):
    """The decoded list is over max_header_list_size; the decoder is still in sync."""


def _missing_update(size: int, allowed: int) -> HpackError:
    return HpackError(
        f"no dynamic table size update after SETTINGS_HEADER_TABLE_SIZE went down to {allowed} "
        f"(the table is still {size})"
    )


def _read_integer(data: bytes, position: int, end: int, value: int) -> tuple[int, int]:
    """The continuation octets of an integer whose prefix is full (`value`): value, next position."""
    shift = 0
    while True:
        if position >= end:
            raise HpackError("header block truncated inside an integer")
        byte = data[position]
        position += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 28:
            raise HpackError("integer longer than five continuation octets")
    if value > MAX_INTEGER:
        raise HpackError("integer above 2^32 - 1")
    return value, position


def _read_string(data: bytes, position: int, end: int, memo: bool) -> tuple[bytes, int]:
    """A string literal at `position`: its text (Huffman-decoded if flagged), next position.

    `memo`: a short Huffman string may be looked up in (and added to) the worker's memo of
    decoded strings, which all connections share; never for credentials, so how long a
    decode takes tells nothing of another connection's secrets."""
    if position >= end:
        raise HpackError("header block truncated before a string")
    byte = data[position]
    length = byte & 0x7F
    position += 1
    if length == 0x7F:
        length, position = _read_integer(data, position, end, 0x7F)
    stop = position + length
    if stop > end:
        raise HpackError("header block truncated inside a string")
    if not byte & 0x80:
        return data[position:stop], stop
    if memo and length <= _DECODED_MEMO_MAX:
        encoded = data[position:stop]
        text = _DECODED.get(encoded)
        if text is None:
            text = huffman.decode(encoded, 0, length)
            if text is None:
                raise HpackError("invalid Huffman string (EOS, or padding not 1-7 one bits)")
            remember(_DECODED, encoded, text, _DECODED_LIMIT)
        return text, stop
    text = huffman.decode(data, position, stop)
    if text is None:
        raise HpackError("invalid Huffman string (EOS, or padding not 1-7 one bits)")
    return text, stop


# One-byte bytes objects: what most prefix octets and small indexes are written as.
_BYTES: Final[list[bytes]] = [bytes((value,)) for value in range(256)]


def _integer(flags: int, prefix_max: int, value: int) -> bytes:
    """`value` with an N-bit prefix (`prefix_max` = 2^N - 1), the prefix octet OR'd with `flags`."""
    if value < prefix_max:
        return _BYTES[flags | value]
    out = [flags | prefix_max]
    value -= prefix_max
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _encode_raw(text: bytes) -> bytes:
    return _integer(0x00, 0x7F, len(text)) + text


def _encode_literal(text: bytes) -> bytes:
    """The string literal of `text`: Huffman-encoded unless that is longer."""
    length = huffman.encoded_length(text)
    if length <= len(text):  # a tie goes to Huffman, as in RFC 7541 Appendix C
        return _integer(0x80, 0x7F, length) + huffman.encode(text)
    return _encode_raw(text)


def _encode_string(text: bytes) -> bytes:
    """_encode_literal(text), through the memo all connections share."""
    cached = _STRINGS.get(text)
    if cached is not None:
        return cached
    literal = _encode_literal(text)
    if len(text) <= _STRING_MEMO_MAX:
        remember(_STRINGS, text, literal, _STRINGS_LIMIT)
    return literal


@final
class Decoder:
    """Header blocks to header lists, for one connection's direction peer -> us."""

    __slots__ = (
        "_entries",
        "_max_size",
        "_size",
        "_start",
        "max_allowed_table_size",
        "max_header_list_size",
    )

    def __init__(
        self, max_table_size: int = DEFAULT_TABLE_SIZE, max_header_list_size: int = 65536
    ) -> None:
        # The SETTINGS_HEADER_TABLE_SIZE we advertise: the peer may size its table up to it.
        # Lower it when the peer acknowledges a lower setting: its next block must then start
        # with a size update within it (RFC 7541 section 4.2), or it does not decode.
        self.max_allowed_table_size = max_table_size
        self.max_header_list_size = max_header_list_size
        # The dynamic table, oldest first: live entries are _entries[_start:] (evicting is
        # moving _start; the dead head is dropped now and then, see _insert).
        self._entries: list[_Field] = []
        self._start = 0
        self._size = 0
        self._max_size = max_table_size

    @property
    def table_size(self) -> int:
        """The dynamic table's size now (entries + 32 each)."""
        return self._size

    @property
    def table_max_size(self) -> int:
        """The dynamic table's maximum size, as the peer last set it."""
        return self._max_size

    def decode(self, data: bytes) -> list[Header]:
        """The header list of one complete header block; HpackError if it is malformed."""
        headers: list[_Field] = []
        end = len(data)
        position = 0
        room = self.max_header_list_size
        updates = 0
        fields = False
        header: _Field
        while position < end:
            byte = data[position]
            position += 1
            if byte & 0x80:  # indexed field
                index = byte & 0x7F
                if 0 < index <= STATIC_LENGTH:  # the common case, inline
                    header = STATIC_TABLE[index - 1]
                else:
                    if index == 0x7F:
                        index, position = _read_integer(data, position, end, 0x7F)
                    header = self._field(index)
            elif byte & 0x40:  # literal with incremental indexing
                index = byte & 0x3F
                if index == 0x3F:
                    index, position = _read_integer(data, position, end, 0x3F)
                if index:
                    name = self._field(index)[0]
                else:
                    name, position = _read_string(data, position, end, True)
                value, position = _read_string(data, position, end, name not in SENSITIVE)
                header = (name, value)
                self._insert(header)
            elif byte & 0x20:  # dynamic table size update
                if fields:
                    raise HpackError("dynamic table size update after a header field")
                updates += 1
                if updates > 2:
                    raise HpackError("more than two dynamic table size updates in one block")
                size = byte & 0x1F
                if size == 0x1F:
                    size, position = _read_integer(data, position, end, 0x1F)
                if size > self.max_allowed_table_size:
                    raise HpackError(
                        f"dynamic table size update to {size}, above the "
                        f"{self.max_allowed_table_size} allowed"
                    )
                self._resize(size)
                continue
            else:  # literal without indexing (0000) or never indexed (0001)
                index = byte & 0x0F
                if index == 0x0F:
                    index, position = _read_integer(data, position, end, 0x0F)
                if index:
                    name = self._field(index)[0]
                else:
                    name, position = _read_string(data, position, end, True)
                # never indexed (0001): a secret, whatever its name
                memo = not byte & 0x10 and name not in SENSITIVE
                value, position = _read_string(data, position, end, memo)
                header = (name, value)
            if not fields:
                fields = True
                if self._max_size > self.max_allowed_table_size:
                    raise _missing_update(self._max_size, self.max_allowed_table_size)
            room -= len(header[0]) + len(header[1]) + ENTRY_OVERHEAD
            if room >= 0:
                headers.append(header)
            elif headers:
                headers.clear()  # over the limit: keep nothing, read on for the table
        if not fields and self._max_size > self.max_allowed_table_size:
            raise _missing_update(self._max_size, self.max_allowed_table_size)
        if room < 0:
            raise HeaderListTooLarge(
                f"header list over {self.max_header_list_size} bytes "
                f"({self.max_header_list_size - room}, counting 32 per field)"
            )
        return cast("list[Header]", headers)

    def _field(self, index: int) -> _Field:
        if index <= STATIC_LENGTH:
            if index == 0:
                raise HpackError("index 0")
            return STATIC_TABLE[index - 1]
        position = len(self._entries) - 1 - (index - FIRST_DYNAMIC)
        if position < self._start:
            raise HpackError(f"index {index} beyond the dynamic table")
        return self._entries[position]

    def _insert(self, header: _Field) -> None:
        size = len(header[0]) + len(header[1]) + ENTRY_OVERHEAD
        if size > self._max_size:  # RFC 7541 section 4.4: it empties the table
            self._entries.clear()
            self._start = 0
            self._size = 0
            return
        self._size += size
        self._evict(self._max_size)
        entries = self._entries
        if self._start >= 32 and self._start * 2 >= len(entries):
            del entries[: self._start]
            self._start = 0
        entries.append(header)

    def _evict(self, limit: int) -> None:
        entries = self._entries
        start = self._start
        size = self._size
        while size > limit:
            header = entries[start]
            size -= len(header[0]) + len(header[1]) + ENTRY_OVERHEAD
            start += 1
        self._start = start
        self._size = size

    def _resize(self, size: int) -> None:
        self._max_size = size
        self._evict(size)


@final
class _Name:
    """What one encoder knows of one header name: its static entries, its dynamic ones."""

    __slots__ = (
        "dynamic",
        "index",
        "literal",
        "name",
        "newest",
        "sensitive",
        "static",
        "unindexed",
    )

    def __init__(self, name: bytes, unindexed: bool, huffman_on: bool) -> None:
        self.name = name
        self.index = _STATIC_NAMES.get(name, 0)  # the static entry naming it, 0 if none
        self.static = _STATIC_VALUES.get(name, _NO_VALUES)  # its static fields' values: index
        self.sensitive = name in SENSITIVE  # in the default set
        self.unindexed = unindexed
        self.literal = _encode_string(name) if huffman_on else _encode_raw(name)
        # Its live dynamic entries: value -> insertion number; the newest one's number, or -1.
        self.dynamic: dict[bytes, int] = {}
        self.newest = -1


@final
class Encoder:
    """Header lists to header blocks, for one connection's direction us -> peer."""

    __slots__ = (
        "_changes",
        "_entries",
        "_huffman",
        "_inserted",
        "_last_block",
        "_last_changes",
        "_last_headers",
        "_last_sensitive",
        "_last_status",
        "_limit",
        "_max_size",
        "_names",
        "_size",
        "_start",
        "_unindexed",
        "_update_final",
        "_update_low",
        "_update_pending",
        "_values",
    )

    def __init__(
        self,
        max_table_size: int = DEFAULT_TABLE_SIZE,
        *,
        huffman: bool = True,
        unindexed: frozenset[bytes] = PER_REQUEST,
    ) -> None:
        """`huffman`: False sends every string raw; `unindexed`: names whose fields are sent
        without indexing (the RFC 7541 Appendix C examples index everything, for one)."""
        self._huffman = huffman
        self._unindexed = unindexed
        # The most table we use, whatever the peer allows (a table is memory per connection);
        # also the size we start at, so above the protocol's 4096 only after the peer's SETTINGS
        # said so (set_max_table_size).
        self._limit = max_table_size
        self._max_size = min(max_table_size, DEFAULT_TABLE_SIZE)
        self._update_pending = self._max_size != DEFAULT_TABLE_SIZE
        self._update_low = self._max_size
        self._update_final = self._max_size
        # Per name, what we know: one dict lookup finds a field's static or dynamic index,
        # where a dict of fields would hash and compare (name, value) tuples.
        self._names: dict[bytes, _Name] = {}
        # The dynamic table, oldest first: the names and values of its entries; live from
        # _start on. _inserted counts insertions: the entry inserted as number n has the index
        # 62 + (_inserted - 1 - n).
        self._entries: list[_Name] = []
        self._values: list[bytes] = []
        self._start = 0
        self._size = 0
        self._inserted = 0
        # Counts what changes the table (insertions, size updates, and one pending); the last
        # response block and what made it, for encode_response.
        self._changes = 1 if self._update_pending else 0
        self._last_status = -1
        self._last_headers: list[Header] = []
        self._last_sensitive = SENSITIVE
        self._last_changes = -1
        self._last_block = b""

    @property
    def table_size(self) -> int:
        """The dynamic table's size now (entries + 32 each)."""
        return self._size

    @property
    def table_max_size(self) -> int:
        """The dynamic table's maximum size, as last signalled to the peer."""
        return self._max_size

    def set_max_table_size(self, size: int) -> None:
        """The peer's SETTINGS_HEADER_TABLE_SIZE: the next block starts with a size update."""
        size = min(size, self._limit)
        if not self._update_pending:
            if size == self._max_size:
                return
            self._update_pending = True
            self._update_low = size
        else:
            self._update_low = min(self._update_low, size)
        self._update_final = size
        self._changes += 1

    def encode(self, headers: list[Header], sensitive: frozenset[bytes] = SENSITIVE) -> bytes:
        """The header block of `headers` (names lowercase); fields named in `sensitive` are
        sent never-indexed."""
        out: list[bytes] = []
        if self._update_pending:
            self._write_updates(out)
        for header in cast("list[_Field]", headers):
            self._write_field(out, header[0], header[1], sensitive)
        return b"".join(out)

    def encode_response(
        self, status: int, headers: list[Header], sensitive: frozenset[bytes] = SENSITIVE
    ) -> bytes:
        """The header block of a response: `:status` first (one byte for the common codes).

        The same response again (equal status and headers, the table untouched since) is the
        same block: the last one is kept, when making it changed nothing in the table."""
        if (
            status == self._last_status
            and self._changes == self._last_changes
            and sensitive is self._last_sensitive
            and headers == self._last_headers
        ):
            return self._last_block
        changes = self._changes
        out: list[bytes] = []
        if self._update_pending:
            self._write_updates(out)
        if 0 <= status < 1000:
            static = _STATUS_STATIC[status]
            if static:
                out.append(static)
            else:
                self._write_field(out, b":status", _STATUS_VALUES[status], sensitive)
        else:
            self._write_field(out, b":status", b"%d" % status, sensitive)
        for header in cast("list[_Field]", headers):
            self._write_field(out, header[0], header[1], sensitive)
        block = b"".join(out)
        if self._changes == changes:
            self._last_status = status
            self._last_headers = headers.copy()
            self._last_sensitive = sensitive
            self._last_changes = changes
            self._last_block = block
        return block

    def _write_updates(self, out: list[bytes]) -> None:
        self._update_pending = False
        self._changes += 1
        if self._update_low < self._update_final:  # lowered, then raised: signal both
            out.append(_integer(0x20, 0x1F, self._update_low))
            self._resize(self._update_low)
        out.append(_integer(0x20, 0x1F, self._update_final))
        self._resize(self._update_final)

    def _write_field(
        self, out: list[bytes], name: bytes, value: bytes, sensitive: frozenset[bytes]
    ) -> None:
        known = self._names.get(name)
        if known is None:
            known = self._learn(name)
        if known.static:
            index = known.static.get(value, 0)
            if index:
                out.append(_BYTES[0x80 | index])
                return
        if known.sensitive if sensitive is SENSITIVE else name in sensitive:
            self._write_literal(out, 0x10, 0x0F, known, value)
            return
        number = known.dynamic.get(value, -1)
        if number >= 0:
            out.append(_integer(0x80, 0x7F, FIRST_DYNAMIC - 1 + self._inserted - number))
            return
        size = len(name) + len(value) + ENTRY_OVERHEAD
        if known.unindexed or size * 4 > self._max_size * 3:
            self._write_literal(out, 0x00, 0x0F, known, value)
            return
        self._write_literal(out, 0x40, 0x3F, known, value)
        self._insert(known, size, value)

    def _write_literal(
        self, out: list[bytes], flags: int, prefix_max: int, known: _Name, value: bytes
    ) -> None:
        index = known.index
        if not index and known.newest >= 0:
            index = FIRST_DYNAMIC - 1 + self._inserted - known.newest
        if index:
            out.append(_integer(flags, prefix_max, index))
        else:
            out.append(_BYTES[flags])
            out.append(known.literal)
        if not self._huffman:
            out.append(_encode_raw(value))
        elif flags == 0x10:  # a secret: not kept in the memo all connections share
            out.append(_encode_literal(value))
        else:
            out.append(_encode_string(value))

    def _learn(self, name: bytes) -> _Name:
        names = self._names
        if len(names) >= _NAMES_LIMIT + len(self._entries) - self._start:
            # forget the names that have no entry in the table
            self._names = names = {key: known for key, known in names.items() if known.dynamic}
        known = _Name(name, name in self._unindexed, self._huffman)
        names[name] = known
        return known

    def _insert(self, known: _Name, size: int, value: bytes) -> None:
        self._changes += 1
        self._size += size
        self._evict(self._max_size)
        if self._start >= 32 and self._start * 2 >= len(self._entries):
            del self._entries[: self._start]
            del self._values[: self._start]
            self._start = 0
        self._entries.append(known)
        self._values.append(value)
        known.dynamic[value] = known.newest = self._inserted
        self._inserted += 1

    def _evict(self, limit: int) -> None:
        while self._size > limit:
            known = self._entries[self._start]
            value = self._values[self._start]
            number = self._inserted - len(self._entries) + self._start
            if known.dynamic.get(value, -1) == number:
                del known.dynamic[value]
            if known.newest == number:  # its newest, so its last
                known.newest = -1
            self._size -= len(known.name) + len(value) + ENTRY_OVERHEAD
            self._start += 1

    def _resize(self, size: int) -> None:
        self._max_size = size
        self._evict(size)


# The value of every :status code, made once; the indexed field of those in the static table.
_STATUS_VALUES: Final[list[bytes]] = [b"%d" % code for code in range(1000)]
_STATUS_STATIC: Final[list[bytes]] = [
    _BYTES[0x80 | _STATIC_VALUES[b":status"][value]] if value in _STATIC_VALUES[b":status"] else b""
    for value in _STATUS_VALUES
]
# Names an encoder remembers before forgetting those with no dynamic entry.
_NAMES_LIMIT: Final = 256
