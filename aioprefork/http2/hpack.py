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
indexed before are one or two bytes (a dict lookup); a new field is indexed unless its value is
per-request (:path, content-length, etag...; nghttp2's choice) or too big for the table, and its
string encodings (Huffman unless longer) are memoised across connections. Sensitive fields
(authorization, cookie, set-cookie...) are sent never-indexed, so no intermediary indexes them.
"""

from __future__ import annotations

from typing import Final, cast, final

from aioprefork.http2 import huffman
from aioprefork.protocol.memo import remember

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


def _static_indexes() -> tuple[dict[_Field, int], dict[bytes, int]]:
    full: dict[_Field, int] = {}
    names: dict[bytes, int] = {}
    for position, header in enumerate(STATIC_TABLE):
        if header[1]:
            full.setdefault(header, position + 1)
        names.setdefault(header[0], position + 1)
    return full, names


# The static index of a whole field (those with a value) and of a name (its first entry).
_STATIC_INDEXES: Final = _static_indexes()
_STATIC_FIELDS: Final = _STATIC_INDEXES[0]
_STATIC_NAMES: Final = _STATIC_INDEXES[1]

# The string literal (length prefix, Huffman when shorter) of names and short values, shared by
# every encoder of the worker: bounded, cleared when full (protocol/memo.py).
_STRINGS: Final[dict[bytes, bytes]] = {}
_STRINGS_LIMIT: Final = 512
_STRING_MEMO_MAX: Final = 256  # longer strings are encoded each time


class HpackError(Exception):
    """A header block that does not decode: the connection's COMPRESSION_ERROR."""


class HeaderListTooLarge(HpackError):
    """The decoded list is over max_header_list_size; the decoder is still in sync."""


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


def _read_string(data: bytes, position: int, end: int) -> tuple[bytes, int]:
    """A string literal at `position`: its text (Huffman-decoded if flagged), next position."""
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
    if byte & 0x80:
        text = huffman.decode(data, position, stop)
        if text is None:
            raise HpackError("invalid Huffman string (EOS, or padding not 1-7 one bits)")
        return text, stop
    return data[position:stop], stop


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


def _encode_string(text: bytes) -> bytes:
    """The string literal of `text`: Huffman-encoded unless that is longer."""
    cached = _STRINGS.get(text)
    if cached is not None:
        return cached
    length = huffman.encoded_length(text)
    if length <= len(text):  # a tie goes to Huffman, as in RFC 7541 Appendix C
        literal = _integer(0x80, 0x7F, length) + huffman.encode(text)
    else:
        literal = _encode_raw(text)
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
                    name, position = _read_string(data, position, end)
                value, position = _read_string(data, position, end)
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
                    name, position = _read_string(data, position, end)
                value, position = _read_string(data, position, end)
                header = (name, value)
            fields = True
            room -= len(header[0]) + len(header[1]) + ENTRY_OVERHEAD
            if room >= 0:
                headers.append(header)
            elif headers:
                headers.clear()  # over the limit: keep nothing, read on for the table
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
class Encoder:
    """Header lists to header blocks, for one connection's direction us -> peer."""

    __slots__ = (
        "_entries",
        "_fields",
        "_huffman",
        "_inserted",
        "_limit",
        "_max_size",
        "_names",
        "_size",
        "_start",
        "_unindexed",
        "_update_final",
        "_update_low",
        "_update_pending",
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
        # The dynamic table, oldest first (live: _entries[_start:]); entry k was the
        # (_inserted - len(_entries) + k)-th inserted. _fields and _names map a field and a name
        # to the insertion number of their newest live entry.
        self._entries: list[_Field] = []
        self._start = 0
        self._size = 0
        self._inserted = 0
        self._fields: dict[_Field, int] = {}
        self._names: dict[bytes, int] = {}

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

    def encode(self, headers: list[Header], sensitive: frozenset[bytes] = SENSITIVE) -> bytes:
        """The header block of `headers` (names lowercase); fields named in `sensitive` are
        sent never-indexed."""
        out: list[bytes] = []
        if self._update_pending:
            self._write_updates(out)
        for header in cast("list[_Field]", headers):
            self._write_field(out, header, sensitive)
        return b"".join(out)

    def encode_response(
        self, status: int, headers: list[Header], sensitive: frozenset[bytes] = SENSITIVE
    ) -> bytes:
        """The header block of a response: `:status` first (one byte for the common codes)."""
        out: list[bytes] = []
        if self._update_pending:
            self._write_updates(out)
        if 0 <= status < 1000:
            self._write_field(out, _STATUS_FIELDS[status], sensitive)
        else:
            self._write_field(out, (b":status", b"%d" % status), sensitive)
        for header in cast("list[_Field]", headers):
            self._write_field(out, header, sensitive)
        return b"".join(out)

    def _write_updates(self, out: list[bytes]) -> None:
        self._update_pending = False
        if self._update_low < self._update_final:  # lowered, then raised: signal both
            out.append(_integer(0x20, 0x1F, self._update_low))
            self._resize(self._update_low)
        out.append(_integer(0x20, 0x1F, self._update_final))
        self._resize(self._update_final)

    def _write_field(self, out: list[bytes], header: _Field, sensitive: frozenset[bytes]) -> None:
        index = _STATIC_FIELDS.get(header, 0)
        if index:
            out.append(_BYTES[0x80 | index])
            return
        name = header[0]
        if name in sensitive:
            self._write_literal(out, 0x10, 0x0F, header)
            return
        inserted = self._fields.get(header, -1)
        if inserted >= 0:
            out.append(_integer(0x80, 0x7F, FIRST_DYNAMIC - 1 + self._inserted - inserted))
            return
        size = len(name) + len(header[1]) + ENTRY_OVERHEAD
        if name in self._unindexed or size * 4 > self._max_size * 3:
            self._write_literal(out, 0x00, 0x0F, header)
            return
        self._write_literal(out, 0x40, 0x3F, header)
        self._insert(header, size)

    def _write_literal(self, out: list[bytes], flags: int, prefix_max: int, header: _Field) -> None:
        name = header[0]
        index = _STATIC_NAMES.get(name, 0)
        if not index:
            inserted = self._names.get(name, -1)
            if inserted >= 0:
                index = FIRST_DYNAMIC - 1 + self._inserted - inserted
        if index:
            out.append(_integer(flags, prefix_max, index))
        else:
            out.append(_BYTES[flags])
            out.append(_encode_string(name) if self._huffman else _encode_raw(name))
        value = header[1]
        out.append(_encode_string(value) if self._huffman else _encode_raw(value))

    def _insert(self, header: _Field, size: int) -> None:
        self._size += size
        self._evict(self._max_size)
        entries = self._entries
        if self._start >= 32 and self._start * 2 >= len(entries):
            del entries[: self._start]
            self._start = 0
        entries.append(header)
        self._fields[header] = self._inserted
        self._names[header[0]] = self._inserted
        self._inserted += 1

    def _evict(self, limit: int) -> None:
        entries = self._entries
        while self._size > limit:
            header = entries[self._start]
            number = self._inserted - len(entries) + self._start
            if self._fields.get(header, -1) == number:
                del self._fields[header]
            if self._names.get(header[0], -1) == number:
                del self._names[header[0]]
            self._size -= len(header[0]) + len(header[1]) + ENTRY_OVERHEAD
            self._start += 1

    def _resize(self, size: int) -> None:
        self._max_size = size
        self._evict(size)


# (b":status", b"NNN") for every code, made once: the same tuple each time hashes from cache.
_STATUS_FIELDS: Final[list[_Field]] = [(b":status", b"%d" % code) for code in range(1000)]
