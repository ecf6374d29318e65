"""Reading corpus text files, and what a reader normalised or dropped on the way.

Every reader decodes its files with :func:`read_corpus_text`: UTF-8 only (anything else is
one :class:`~mtal_ray.errors.DataFormatError`), a leading byte-order mark is removed and
CRLF line ends become LF. What was accepted that way is counted in a :class:`ReadReport`,
which :func:`~mtal_ray.data.corpus.load_corpus` keeps per split
(:attr:`~mtal_ray.data.corpus.Corpus.report`) and ``mtal-ray data stats`` prints.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtal_ray.errors import DataFormatError

BOM = "\ufeff"


@dataclass
class ReadReport:
    """What a reader accepted without it being the canonical form of its format.

    Attributes
    ----------
    normalised
        Kind -> count: ``bom`` (files that started with a byte-order mark), ``crlf``
        (lines ending in CRLF), ``trailing_whitespace`` (``slu`` lines with whitespace
        after the last word, ``conllu`` word lines with spaces or tabs after the last
        column), ``whitespace_runs`` (``slu`` lines with tabs / several spaces / leading
        whitespace between words), ``missing_final_newline`` (files).
    dropped_entities
        Entity mentions dropped by an ``overlapping_entities`` policy.
    dropped_relations
        Relations dropped because they used a dropped mention.
    """

    normalised: Counter[str] = field(default_factory=Counter)
    dropped_entities: int = 0
    dropped_relations: int = 0

    def merge(self, other: ReadReport) -> None:
        """Add the counts of ``other``."""
        self.normalised.update(other.normalised)
        self.dropped_entities += other.dropped_entities
        self.dropped_relations += other.dropped_relations

    def to_dict(self) -> dict[str, Any]:
        """``{"normalised": {kind: n}, "dropped_entities": n, "dropped_relations": n}``."""
        return {
            "normalised": {k: v for k, v in sorted(self.normalised.items()) if v},
            "dropped_entities": self.dropped_entities,
            "dropped_relations": self.dropped_relations,
        }


def read_corpus_text(path: Path, report: ReadReport | None = None) -> str:
    """The UTF-8 text of ``path`` without a BOM and with LF line ends (both counted).

    Raises
    ------
    DataFormatError
        When the file cannot be read or is not UTF-8 (naming the byte offset).
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataFormatError(path, None, f"cannot read file: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError(
            path, None, f"not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start})"
        ) from None
    report = report if report is not None else ReadReport()
    if text.startswith(BOM):
        text = text[1:]
        report.normalised["bom"] += 1
    crlf = text.count("\r\n")
    if crlf:
        text = text.replace("\r\n", "\n")
        report.normalised["crlf"] += crlf
    return text


def split_lines(text: str) -> list[str]:
    """The lines of ``text`` (a final newline does not start another line)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


_BLANKS = re.compile(r"[ \t]+")
_TABS = re.compile(r" *\t[ \t]*")


def split_fields(line: str) -> list[str]:
    """The columns of a CoNLL-style line: tab-separated when the line has a tab (a token
    may then hold a space, as in "New York"), else space-separated. Only ASCII spaces and
    tabs separate: a no-break or thin space stays inside its token ("10\u00a0000"), where
    ``str.split()`` would cut the token in two and shift every column after it."""
    bare = line.strip(" \t")
    return _TABS.split(bare) if "\t" in bare else split_blanks(bare)


def split_blanks(line: str) -> list[str]:
    """The words of ``line`` separated by runs of ASCII spaces and tabs (other Unicode
    whitespace, e.g. a no-break space, belongs to its word)."""
    bare = line.strip(" \t")
    return _BLANKS.split(bare) if bare else []
