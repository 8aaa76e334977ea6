"""Every document the code points to is in the repository, and every anchor it names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for d in ("aioprefork", "tests", "bench") for p in sorted((ROOT / d).rglob("*.py"))]
REFERENCE = re.compile(
    r"\b(docs/[\w./-]+\.md|README\.md|CONTRIBUTING\.md|bench/README\.md)(#[\w-]+)?"
)
FOREIGN = re.compile(r"SPEC section|SPEC's|\bSPEC:|STYLE\.md|\.\./shared")


def anchors(markdown: Path) -> set[str]:
    """GitHub's heading anchors: lower-case, punctuation dropped, spaces to dashes."""
    heads = re.findall(r"^#+ (.+)$", markdown.read_text(encoding="utf-8"), re.M)
    return {"#" + re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in heads}


def test_code_cites_only_documents_in_the_repository() -> None:
    problems = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(ROOT)
        if path.name != "test_docs.py" and FOREIGN.search(text):
            problems.append(f"{where}: cites a document outside the repository")
        for document, anchor in REFERENCE.findall(text):
            target = ROOT / document
            if not target.is_file():
                problems.append(f"{where}: {document} does not exist")
            elif anchor and anchor not in anchors(target):
                problems.append(f"{where}: {document}{anchor}: no such section")
    assert not problems, "\n".join(problems)


def test_the_documents_a_contributor_needs_exist() -> None:
    for name in ("LICENSE", "CONTRIBUTING.md", "CHANGELOG.md", "docs/architecture.md"):
        assert (ROOT / name).is_file(), name
