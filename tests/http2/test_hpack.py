"""HPACK (aioprefork/http/h2/hpack.py): RFC 7541 Appendix C byte for byte, every malformation
refused with HpackError, the header list limit, and the encoder's choices."""

from __future__ import annotations

import random
import time

import pytest

from aioprefork.http.h2 import huffman
from aioprefork.http.h2.hpack import (
    SENSITIVE,
    Decoder,
    Encoder,
    Header,
    HeaderListTooLarge,
    HpackError,
)

pytestmark = pytest.mark.timeout(30)


def _hex(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


# --- RFC 7541 Appendix C ---------------------------------------------------------------------

# C.2: one field each, on a fresh table.
C2 = [
    (
        "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
        (b"custom-key", b"custom-header"),
        55,
    ),
    ("040c 2f73 616d 706c 652f 7061 7468", (b":path", b"/sample/path"), 0),
    ("1008 7061 7373 776f 7264 0673 6563 7265 74", (b"password", b"secret"), 0),
    ("82", (b":method", b"GET"), 0),
]

REQUESTS: list[list[Header]] = [
    [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"www.example.com"),
    ],
    [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":path", b"/"),
        (b":authority", b"www.example.com"),
        (b"cache-control", b"no-cache"),
    ],
    [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":path", b"/index.html"),
        (b":authority", b"www.example.com"),
        (b"custom-key", b"custom-value"),
    ],
]
REQUEST_TABLE_SIZES = [57, 110, 164]
# C.3 (no Huffman) and C.4 (Huffman): three requests on one connection.
C3 = [
    "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
    "8286 84be 5808 6e6f 2d63 6163 6865",
    "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
]
C4 = [
    "8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
    "8286 84be 5886 a8eb 1064 9cbf",
    "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
]

DATE_1 = b"Mon, 21 Oct 2013 20:13:21 GMT"
DATE_2 = b"Mon, 21 Oct 2013 20:13:22 GMT"
LOCATION = b"https://www.example.com"
COOKIE = b"foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"
RESPONSES: list[list[Header]] = [
    [
        (b":status", b"302"),
        (b"cache-control", b"private"),
        (b"date", DATE_1),
        (b"location", LOCATION),
    ],
    [
        (b":status", b"307"),
        (b"cache-control", b"private"),
        (b"date", DATE_1),
        (b"location", LOCATION),
    ],
    [
        (b":status", b"200"),
        (b"cache-control", b"private"),
        (b"date", DATE_2),
        (b"location", LOCATION),
        (b"content-encoding", b"gzip"),
        (b"set-cookie", COOKIE),
    ],
]
RESPONSE_TABLE_SIZES = [222, 222, 215]
# C.5 (no Huffman) and C.6 (Huffman): three responses, the table limited to 256 octets.
C5 = [
    """4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032
    303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d""",
    "4803 3330 37c1 c0bf",
    """88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0
    5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851
    5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31""",
]
C6 = [
    """4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b
    ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3""",
    "4883 640e ffc1 c0bf",
    """88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad
    94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160
    65c0 03ed 4ee5 b106 3d50 07""",
]
SIZE_UPDATE_256 = _hex("3fe1 01")  # our encoder says it uses 256, the examples assume it


@pytest.mark.parametrize(("wire", "header", "table_size"), C2)
def test_c2_single_fields_decode(wire: str, header: Header, table_size: int) -> None:
    decoder = Decoder()
    assert decoder.decode(_hex(wire)) == [header]
    assert decoder.table_size == table_size


@pytest.mark.parametrize(("wire", "header", "table_size"), C2)
def test_c2_single_fields_encode(wire: str, header: Header, table_size: int) -> None:
    encoder = Encoder(huffman=False, unindexed=frozenset((b":path", b"password")))
    sensitive = frozenset((b"password",))
    if table_size or header[0] == b":method":
        encoder = Encoder(huffman=False)
    assert encoder.encode([header], sensitive) == _hex(wire)
    assert encoder.table_size == table_size


@pytest.mark.parametrize(("wires", "huffman_on"), [(C3, False), (C4, True)], ids=["C.3", "C.4"])
def test_c3_c4_requests_on_one_connection(wires: list[str], huffman_on: bool) -> None:
    decoder = Decoder()
    encoder = Encoder(huffman=huffman_on)
    for wire, headers, size in zip(wires, REQUESTS, REQUEST_TABLE_SIZES, strict=True):
        assert decoder.decode(_hex(wire)) == headers
        assert decoder.table_size == size
        assert encoder.encode(headers) == _hex(wire)
        assert encoder.table_size == size


@pytest.mark.parametrize(("wires", "huffman_on"), [(C5, False), (C6, True)], ids=["C.5", "C.6"])
def test_c5_c6_responses_with_a_256_octet_table(wires: list[str], huffman_on: bool) -> None:
    decoder = Decoder(max_table_size=256)
    # The examples index every field, set-cookie included.
    encoder = Encoder(max_table_size=256, huffman=huffman_on, unindexed=frozenset())
    for number, (wire, headers, size) in enumerate(
        zip(wires, RESPONSES, RESPONSE_TABLE_SIZES, strict=True)
    ):
        assert decoder.decode(_hex(wire)) == headers
        assert decoder.table_size == size
        update = SIZE_UPDATE_256 if number == 0 else b""
        assert encoder.encode(headers, sensitive=frozenset()) == update + _hex(wire)
        assert encoder.table_size == size


def test_huffman_examples_of_c4_and_c6() -> None:
    for text, wire in [
        (b"www.example.com", "f1e3 c2e5 f23a 6ba0 ab90 f4ff"),
        (b"no-cache", "a8eb 1064 9cbf"),
        (b"custom-value", "25a8 49e9 5bb8 e8b4 bf"),
        (b"302", "6402"),
        (b"private", "aec3 771a 4b"),
        (DATE_1, "d07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff"),
        (LOCATION, "9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3"),
    ]:
        assert huffman.encode(text) == _hex(wire)
        assert huffman.encoded_length(text) == len(_hex(wire))
        assert huffman.decode(_hex(wire), 0, len(_hex(wire))) == text


def test_every_byte_value_survives_huffman() -> None:
    everything = bytes(range(256)) * 3
    encoded = huffman.encode(everything)
    assert huffman.decode(encoded, 0, len(encoded)) == everything
    # decode reads only the slice it is given
    framed = b"\x00\x01" + encoded + b"\xff"
    assert huffman.decode(framed, 2, 2 + len(encoded)) == everything


# --- malformed blocks ------------------------------------------------------------------------


def _integer_tail(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


A_HUFFMAN = huffman.encode(b"a")  # 00011 + 111 padding
MALFORMED = {
    "index 0": b"\x80",
    "index beyond the static table, empty dynamic table": b"\xbe",
    "index far beyond": b"\xff" + _integer_tail(1000),
    "literal name index 0 never reached; name index beyond": b"\x7e\x01a",
    "without indexing, name index beyond": b"\x0f\x30\x01a",
    "never indexed, name index beyond": b"\x1f\x30\x01a",
    "integer over 2^32 - 1": b"\xff" + _integer_tail((1 << 32) - 0x7F),
    "integer with six continuation octets": b"\xff" + b"\x80" * 5 + b"\x00",
    "string length over 2^32 - 1": b"\x40\x7f" + _integer_tail((1 << 32) - 0x7F),
    "string of 2^32 - 1 bytes announced, 3 sent": b"\x40\x7f"
    + _integer_tail((1 << 32) - 1 - 0x7F)
    + b"abc",
    "size update over 2^32 - 1": b"\x3f" + _integer_tail(1 << 32),
    "truncated integer": b"\xff\x80",
    "truncated integer at the end": b"\xff",
    "truncated before the name": b"\x40",
    "truncated name": b"\x40\x05abc",
    "truncated before the value": b"\x40\x01a",
    "truncated value": b"\x40\x01a\x03bc",
    "truncated after an indexed name": b"\x41",
    "truncated literal without indexing": b"\x04",
    "truncated never indexed": b"\x10\x01a",
    "truncated size update": b"\x3f",
    "Huffman padding of 8 bits and more": b"\x40\x82" + A_HUFFMAN + b"\xff" + b"\x00",
    "Huffman padding not all ones": b"\x40\x81\x18\x00",
    "Huffman padding of a whole byte": b"\x40\x81\xff\x00",
    "Huffman EOS inside the string": b"\x40\x84\xff\xff\xff\xff\x00",
    "Huffman EOS then a symbol": b"\x40\x85\xff\xff\xff\xfc\x1f\x00",
    "Huffman value invalid": b"\x41\x81\x18",
    "size update after a field": b"\x82\x20",
    "size update between fields": b"\x82\x20\x82",
    "size update above the allowed size": b"\x3f" + _integer_tail(4097 - 0x1F),
    "three size updates": b"\x20\x20\x20",
}


@pytest.mark.parametrize("block", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_block_raises_hpack_error(block: bytes) -> None:
    with pytest.raises(HpackError) as raised:
        Decoder().decode(block)
    assert type(raised.value) is HpackError


def test_the_edges_that_are_valid() -> None:
    decoder = Decoder()
    # two size updates at the start; an empty Huffman string; 7 bits of padding; 2^32 - 1
    assert decoder.decode(b"\x20\x3f\xe1\x1f" + b"\x40\x80\x80") == [(b"", b"")]
    assert decoder.table_max_size == 4096
    assert decoder.decode(b"\x40\x81" + A_HUFFMAN + b"\x00") == [(b"a", b"")]
    assert decoder.decode(b"") == []
    assert decoder.decode(b"\x20") == []  # a size update alone empties the table
    assert decoder.table_size == 0
    big = Decoder(max_header_list_size=1 << 40)
    big.max_allowed_table_size = (1 << 32) - 1
    assert big.decode(b"\x3f" + _integer_tail((1 << 32) - 1 - 0x1F)) == []
    assert big.table_max_size == (1 << 32) - 1


def test_the_dynamic_table_keeps_its_size_and_index_order() -> None:
    decoder = Decoder(max_table_size=100)
    decoder.decode(b"\x40\x01a\x01b" + b"\x40\x01c\x01d")  # 34 + 34
    assert decoder.decode(b"\xbe\xbf") == [(b"c", b"d"), (b"a", b"b")]
    decoder.decode(b"\x40\x01e\x01f")  # evicts a: b
    assert decoder.decode(b"\xbe\xbf") == [(b"e", b"f"), (b"c", b"d")]
    with pytest.raises(HpackError):
        decoder.decode(b"\xc0")
    # an entry bigger than the table empties it
    assert decoder.decode(b"\x40\x01x\x64" + b"y" * 100) == [(b"x", b"y" * 100)]
    assert decoder.table_size == 0
    with pytest.raises(HpackError):
        Decoder(max_table_size=100).decode(b"\xbe")
    # a size update shrinks the table from the oldest end
    decoder.decode(b"\x40\x01a\x01b" + b"\x40\x01c\x01d")
    assert decoder.decode(b"\x3f\x03\xbe") == [(b"c", b"d")]  # 34 octets
    assert decoder.table_size == 34


def test_the_name_of_an_entry_evicted_by_its_own_insertion() -> None:
    decoder = Decoder(max_table_size=40)
    decoder.decode(b"\x40\x04name\x01v")
    assert decoder.decode(b"\x7e\x02vv") == [(b"name", b"vv")]
    assert decoder.decode(b"\xbe") == [(b"name", b"vv")]


def test_many_evictions_keep_the_table_consistent() -> None:
    decoder = Decoder(max_table_size=200)
    encoder = Encoder(max_table_size=200)
    for number in range(2000):
        headers = [(b"x-n", b"%d" % number), (b"x-m", b"%d" % (number // 3))]
        assert decoder.decode(encoder.encode(headers)) == headers
        assert decoder.table_size == encoder.table_size <= 200


# --- the header list limit -------------------------------------------------------------------


def test_the_limit_counts_name_value_and_32() -> None:
    block = b"\x40\x04name\x05value"  # 4 + 5 + 32 = 41
    assert Decoder(max_header_list_size=41).decode(block) == [(b"name", b"value")]
    with pytest.raises(HeaderListTooLarge):
        Decoder(max_header_list_size=40).decode(block)
    assert Decoder(max_header_list_size=82).decode(block + b"\xbe") == [(b"name", b"value")] * 2
    with pytest.raises(HeaderListTooLarge):
        Decoder(max_header_list_size=81).decode(block + b"\xbe")


def test_an_oversize_list_leaves_the_table_in_sync() -> None:
    decoder = Decoder(max_header_list_size=100)
    with pytest.raises(HeaderListTooLarge):
        decoder.decode(b"\x40\x01a" + b"\x7f\x01" + b"v" * 128 + b"\x40\x01b\x01c")
    # both insertions happened: the next block may refer to them
    assert decoder.decode(b"\xbe") == [(b"b", b"c")]
    assert decoder.table_size == 34 + 1 + 128 + 32


def test_a_malformed_block_past_the_limit_is_still_a_compression_error() -> None:
    decoder = Decoder(max_header_list_size=10)
    with pytest.raises(HpackError) as raised:
        decoder.decode(b"\x82" + b"\x80")
    assert type(raised.value) is HpackError


def test_an_hpack_bomb_stops_at_the_limit() -> None:
    """One 4 KiB entry referenced 16,000 times: 64 MiB of headers that are never made."""
    decoder = Decoder(max_header_list_size=65536)
    value = b"v" * 4000
    block = b"\x40\x01b\x7f" + _integer_tail(4000 - 0x7F) + value + b"\xbe" * 16000
    started = time.perf_counter()
    with pytest.raises(HeaderListTooLarge):
        decoder.decode(block)
    assert time.perf_counter() - started < 2.0
    assert decoder.decode(b"\xbe") == [(b"b", value)]


# --- random input ----------------------------------------------------------------------------


def test_random_bytes_raise_nothing_but_hpack_error() -> None:
    rng = random.Random(7541)
    started = time.perf_counter()
    decoder = Decoder()
    seeds = [_hex(wire) for wire in C3 + C4 + C5 + C6]
    outcomes = {"decoded": 0, "refused": 0}
    for round_number in range(30000):
        if round_number % 2:
            block = bytes(rng.randrange(256) for _ in range(rng.randrange(48)))
        else:  # a valid block with a few bytes changed
            mutated = bytearray(rng.choice(seeds))
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            block = bytes(mutated)
        if round_number % 1000 == 0:
            decoder = Decoder()
        try:
            decoder.decode(block)
            outcomes["decoded"] += 1
        except HpackError:
            outcomes["refused"] += 1
            decoder = Decoder()  # the connection would be gone
    assert min(outcomes.values()) > 1000, outcomes
    assert time.perf_counter() - started < 20


def test_random_header_lists_round_trip() -> None:
    rng = random.Random(9113)
    names = [b":status", b"content-type", b"x-a", b"x-bb", b"set-cookie", b"date", b"etag"]
    decoder = Decoder(max_table_size=1024)
    decoder.max_allowed_table_size = 8192
    encoder = Encoder(max_table_size=8192)
    for round_number in range(3000):
        if round_number % 97 == 0:
            size = rng.choice([0, 64, 300, 4096, 8192])
            encoder.set_max_table_size(size)
            if rng.random() < 0.5:
                encoder.set_max_table_size(rng.choice([0, 100, 5000]))
        headers = [
            (rng.choice(names), bytes(rng.randrange(256) for _ in range(rng.randrange(12))))
            for _ in range(rng.randrange(8))
        ]
        assert decoder.decode(encoder.encode(headers)) == headers
        assert decoder.table_size == encoder.table_size


# --- the encoder's choices -------------------------------------------------------------------


def test_common_response_fields_cost_one_byte() -> None:
    encoder = Encoder()
    headers = [(b"content-type", b"text/plain"), (b"server", b"aioprefork")]
    first = encoder.encode_response(200, headers)
    assert first[0] == 0x88
    assert len(encoder.encode_response(200, headers)) == 3  # :status static, two dynamic
    assert encoder.encode_response(404, headers) == b"\x8d\xbf\xbe"
    decoder = Decoder()
    assert decoder.decode(first) == [(b":status", b"200"), *headers]
    assert decoder.decode(encoder.encode_response(201, [])) == [(b":status", b"201")]
    assert encoder.encode_response(201, []) == b"\xbe"


def test_sensitive_fields_are_never_indexed() -> None:
    encoder = Encoder()
    for name in sorted(SENSITIVE):
        block = encoder.encode([(name, b"secret-value")])
        assert block[0] & 0xF0 == 0x10, name
    assert encoder.table_size == 0
    # a custom name too, and literal names take the never-indexed flag
    block = encoder.encode([(b"x-token", b"t")], sensitive=frozenset((b"x-token",)))
    assert block[0] == 0x10
    assert Decoder().decode(block) == [(b"x-token", b"t")]
    assert encoder.table_size == 0


def test_per_request_fields_are_not_indexed_but_the_rest_are() -> None:
    encoder = Encoder()
    encoder.encode([(b"content-length", b"13"), (b"etag", b'"x"'), (b":path", b"/a")])
    assert encoder.table_size == 0
    encoder.encode([(b"date", b"Sat, 05 Dec 2026 08:00:00 GMT")])
    assert encoder.table_size == 4 + 29 + 32


def test_a_field_too_big_for_the_table_is_not_indexed() -> None:
    encoder = Encoder()
    encoder.encode([(b"x-big", b"v" * 3100)])
    assert encoder.table_size == 0


def test_table_size_changes_are_signalled_at_the_next_block() -> None:
    encoder = Encoder()
    encoder.set_max_table_size(4096)  # unchanged: nothing to say
    assert encoder.encode([(b":method", b"GET")]) == b"\x82"
    encoder.set_max_table_size(0)
    encoder.set_max_table_size(1000)
    block = encoder.encode([(b":method", b"GET")])
    assert block == b"\x20\x3f\xc9\x07\x82"  # 0, then 1000
    decoder = Decoder()
    assert decoder.decode(block) == [(b":method", b"GET")]
    assert decoder.table_max_size == 1000
    encoder.set_max_table_size(100000)  # above our own limit: we stay at 4096
    assert encoder.encode([])[:3] == b"\x3f\xe1\x1f"
    assert encoder.table_max_size == 4096


def test_an_encoder_smaller_than_the_default_says_so_first() -> None:
    encoder = Encoder(max_table_size=0)
    # a tie in length goes to Huffman ("b" is 6 bits)
    literal = b"\x00\x83" + huffman.encode(b"x-a") + b"\x81" + huffman.encode(b"b")
    assert encoder.encode([(b"x-a", b"b")]) == b"\x20" + literal
    assert encoder.table_size == 0


def test_evicted_entries_are_forgotten_by_the_encoder() -> None:
    encoder = Encoder(max_table_size=100)
    decoder = Decoder(max_table_size=100)
    first = [(b"x-one", b"1")]
    assert decoder.decode(encoder.encode(first)) == first
    for number in range(5):
        headers = [(b"x-other", b"%d" % number)]
        assert decoder.decode(encoder.encode(headers)) == headers
    block = encoder.encode(first)
    assert block[0] & 0xC0 == 0x40  # a literal again: the first entry was evicted
    assert decoder.decode(block) == first


# --- the memos shared by a worker's connections ----------------------------------------------


def test_credentials_never_enter_the_shared_memos() -> None:
    """A memo hit is faster than a miss: what one connection sent must not be observable from
    another, so secrets are neither remembered encoded nor decoded."""
    from aioprefork.http.h2 import hpack

    secret = b"Bearer s3cr3t-token-value"
    cookie = b"session=0123456789abcdef"
    block = Encoder().encode(
        [(b"authorization", secret), (b"cookie", cookie), (b"x-token", b"tok-value")],
        sensitive=frozenset((b"authorization", b"cookie", b"x-token")),
    )
    assert secret not in hpack._STRINGS and cookie not in hpack._STRINGS
    assert b"tok-value" not in hpack._STRINGS
    decoded = Decoder().decode(block)
    assert decoded == [(b"authorization", secret), (b"cookie", cookie), (b"x-token", b"tok-value")]
    assert not {secret, cookie, b"tok-value"} & set(hpack._DECODED.values())
    # indexed by a peer that does not know better: still not remembered under those names
    name, value = huffman.encode(b"cookie"), huffman.encode(b"a" * 30)
    indexed = b"\x40" + bytes((0x80 | len(name),)) + name + bytes((0x80 | len(value),)) + value
    assert Decoder().decode(indexed) == [(b"cookie", b"a" * 30)]
    assert b"a" * 30 not in hpack._DECODED.values()
    # and the ordinary strings are
    Decoder().decode(Encoder().encode([(b"user-agent", b"curl/8.11.1")]))
    assert b"curl/8.11.1" in hpack._DECODED.values()


def test_a_memo_hit_decodes_the_same_as_a_miss() -> None:
    headers = [(b"x-custom-name", b"some repeated value"), (b"user-agent", b"agent/1.0")]
    first = Decoder().decode(Encoder().encode(headers))
    again = Decoder().decode(Encoder().encode(headers))
    assert first == again == headers
    # an invalid Huffman string is refused whether or not it looks like a remembered one
    with pytest.raises(HpackError):
        Decoder().decode(b"\x40\x81\x18\x00")
    with pytest.raises(HpackError):
        Decoder().decode(b"\x40\x81\x18\x00")


def test_a_lowered_setting_needs_a_size_update_in_the_next_block() -> None:
    decoder = Decoder()
    decoder.decode(b"\x40\x01a\x01b")
    decoder.max_allowed_table_size = 100  # the peer acknowledged SETTINGS_HEADER_TABLE_SIZE=100
    with pytest.raises(HpackError, match="no dynamic table size update"):
        decoder.decode(b"\x82")
    with pytest.raises(HpackError, match="no dynamic table size update"):
        decoder.decode(b"")
    with pytest.raises(HpackError, match="above the 100 allowed"):
        decoder.decode(b"\x3f\x82\x01\x82")  # 161
    assert decoder.decode(b"\x3f\x45\xbe") == [(b"a", b"b")]  # 100: the entry stays
    assert decoder.table_max_size == 100
    assert decoder.decode(b"\x82") == [(b":method", b"GET")]  # said once is enough
    # raising the setting asks nothing of the peer
    decoder.max_allowed_table_size = 4096
    assert decoder.decode(b"\x82") == [(b":method", b"GET")]
    # our encoder does what is asked
    encoder = Encoder()
    encoder.encode([(b"x-a", b"b")])
    encoder.set_max_table_size(100)
    decoder = Decoder()
    decoder.decode(b"\x40\x01a\x01b")
    decoder.max_allowed_table_size = 100
    assert decoder.decode(encoder.encode([(b":method", b"GET")])) == [(b":method", b"GET")]


def test_the_same_response_again_is_the_same_block_only_while_the_table_agrees() -> None:
    encoder = Encoder()
    decoder = Decoder()
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
    first = encoder.encode_response(200, headers)  # inserts content-type
    second = encoder.encode_response(200, list(headers))  # now indexed
    third = encoder.encode_response(
        200, [(b"content-type", b"text/plain"), (b"content-length", b"13")]
    )
    assert second == third != first
    assert third is second  # the kept block
    for block in (first, second, third):
        assert decoder.decode(block) == [(b":status", b"200"), *headers]
    # any change in what is asked, or in the table, makes a new one
    assert decoder.decode(encoder.encode_response(404, headers)) == [(b":status", b"404"), *headers]
    assert encoder.encode_response(200, headers) == second
    changed = [(b"content-type", b"text/plain"), (b"content-length", b"14")]
    assert decoder.decode(encoder.encode_response(200, changed)) == [(b":status", b"200"), *changed]
    secret = encoder.encode_response(200, headers, sensitive=frozenset((b"content-length",)))
    assert secret != second and decoder.decode(secret) == [(b":status", b"200"), *headers]
    decoder.decode(encoder.encode([(b"x-new", b"field")]))  # moves every dynamic index
    moved = encoder.encode_response(200, headers)
    assert moved != second
    assert decoder.decode(moved) == [(b":status", b"200"), *headers]
    encoder.set_max_table_size(2048)  # a size update to send
    updated = encoder.encode_response(200, headers)
    assert updated[0] & 0xE0 == 0x20
    assert decoder.decode(updated) == [(b":status", b"200"), *headers]
    assert encoder.encode_response(200, headers) == updated[3:]


def test_an_encoder_forgets_names_it_no_longer_holds() -> None:
    """Endless new names cost a bounded memory: those without a table entry are dropped."""
    encoder = Encoder(max_table_size=256)
    decoder = Decoder(max_table_size=256)
    for number in range(3000):
        headers = [(b"x-name-%d" % number, b"v"), (b"x-kept", b"same")]
        assert decoder.decode(encoder.encode(headers)) == headers
    assert len(encoder._names) <= 256 + 8
    # what is still in the table is still used
    assert encoder.encode([(b"x-kept", b"same")])[0] & 0x80


def test_raw_strings_when_huffman_is_off() -> None:
    encoder = Encoder(huffman=False)
    block = encoder.encode(
        [(b"x-a", b"aaaa"), (b"authorization", b"secret")], sensitive=frozenset((b"authorization",))
    )
    assert block == b"\x40\x03x-a\x04aaaa" + b"\x1f\x08\x06secret"
    assert Decoder().decode(block) == [(b"x-a", b"aaaa"), (b"authorization", b"secret")]
