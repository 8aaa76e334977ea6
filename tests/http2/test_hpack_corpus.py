"""The HPACK test-case corpus: other encoders' header blocks decode to their header lists (the
dynamic table carried over case to case), and what our encoder makes of them decodes back."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from aioprefork.http.h2.hpack import Decoder, Encoder, Header

pytestmark = pytest.mark.timeout(60)

CORPUS = Path(__file__).resolve().parent / "hpack-test-case"
WIRE_SETS = sorted(
    path.name for path in CORPUS.iterdir() if path.is_dir() and path.name != "raw-data"
)


def _stories(folder: str) -> list[Path]:
    stories = sorted((CORPUS / folder).glob("story_*.json.gz"))
    assert stories, folder
    return stories


def _load(path: Path) -> dict[str, Any]:
    story: dict[str, Any] = json.loads(gzip.decompress(path.read_bytes()))
    return story


def _headers(case: dict[str, Any]) -> list[Header]:
    return [
        (name.encode(), value.encode())
        for field in case["headers"]
        for name, value in field.items()
    ]


@pytest.mark.parametrize("folder", WIRE_SETS)
def test_every_story_decodes_case_by_case(folder: str) -> None:
    cases = 0
    for path in _stories(folder):
        decoder = Decoder()
        for case in _load(path)["cases"]:
            if "header_table_size" in case:
                decoder.max_allowed_table_size = case["header_table_size"]
            assert decoder.decode(bytes.fromhex(case["wire"])) == _headers(case), (path, case)
            cases += 1
    assert cases > 100


@pytest.mark.parametrize("folder", [*WIRE_SETS, "raw-data"])
def test_every_story_round_trips_through_our_encoder(folder: str) -> None:
    for path in _stories(folder):
        encoder = Encoder()
        decoder = Decoder()
        encoded = 0
        raw = 0
        for case in _load(path)["cases"]:
            headers = _headers(case)
            if "header_table_size" in case:
                decoder.max_allowed_table_size = case["header_table_size"]
                encoder.set_max_table_size(case["header_table_size"])
            block = encoder.encode(headers)
            assert decoder.decode(block) == headers, (path, case)
            assert decoder.table_max_size == encoder.table_max_size
            encoded += len(block)
            raw += sum(len(name) + len(value) for name, value in headers)
        # A story is one connection: the dynamic table should have earned its keep.
        assert encoded * 2 < raw, (path, encoded, raw)
