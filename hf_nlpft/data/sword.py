"""A small reader for SWORD Bible modules (``zText`` / ``zText4``), without the SWORD library.

SWORD (https://crosswire.org/sword) stores a Bible module as a ``mods.d/<module>.conf`` file and a data
folder (the conf's ``DataPath``) holding, per testament, three files:

``ot.bzs`` / ``nt.bzs``  block index: one ``<uint32 offset, uint32 size, uint32 uncompressed size>``
                         triple (little-endian) per compressed block of the ``.bzz`` file;
``ot.bzv`` / ``nt.bzv``  verse index: one ``<uint32 block, uint32 offset in the uncompressed block,
                         uint16 size>`` entry (10 bytes; ``zText4`` widens the size to uint32, 12 bytes)
                         per index position;
``ot.bzz`` / ``nt.bzz``  the blocks, each compressed on its own (``CompressType=ZIP`` is zlib).

Index positions follow the module's versification (the conf's ``Versification``, default KJV): in each
testament, position 0 is the (empty) module heading and 1 the testament heading; then every book has one
book-introduction entry, and every chapter one chapter-heading entry followed by its verses. The
versification tables below (KJV and NRSVA, the two the Debian ``sword-text-web`` and
``sword-text-sparv`` modules use) give books and verses per chapter, copied from SWORD's
``canon.h`` / ``canon_nrsva.h``. A verse index whose length does not match the table raises
``ValueError`` rather than mislabelling verses.

:func:`to_plain_text` turns a verse's markup (OSIS, ThML or GBF) into plain text;
:func:`undo_drop_caps` puts back in their usual case the capitalised words that open each chapter in
some editions.
"""

from __future__ import annotations

import bz2
import html
import lzma
import re
import struct
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

SWORD_ROOT = Path("/usr/share/sword")

# --- versifications -------------------------------------------------------------------------------

# Each book: its OSIS id, then the number of verses in each of its chapters.
_KJV_OT = """
Gen 31 25 24 26 32 22 24 22 29 32 32 20 18 24 21 16 27 33 38 18 34 24 20 67 34 35 46 22 35 43 55 32 20
    31 29 43 36 30 23 23 57 38 34 34 28 34 31 22 33 26
Exod 22 25 22 31 23 30 25 32 35 29 10 51 22 31 27 36 16 27 25 26 36 31 33 18 40 37 21 43 46 38 18 35 23
    35 35 38 29 31 43 38
Lev 17 16 17 35 19 30 38 36 24 20 47 8 59 57 33 34 16 30 37 27 24 33 44 23 55 46 34
Num 54 34 51 49 31 27 89 26 23 36 35 16 33 45 41 50 13 32 22 29 35 41 30 25 18 65 23 31 40 16 54 42 56
    29 34 13
Deut 46 37 29 49 33 25 26 20 29 22 32 32 18 29 23 22 20 22 21 20 23 30 25 22 19 19 26 68 29 20 30 52 29
    12
Josh 18 24 17 24 15 27 26 35 27 43 23 24 33 15 63 10 18 28 51 9 45 34 16 33
Judg 36 23 31 24 31 40 25 35 57 18 40 15 25 20 20 31 13 31 30 48 25
Ruth 22 23 18 22
1Sam 28 36 21 22 12 21 17 22 27 27 15 25 23 52 35 23 58 30 24 42 15 23 29 22 44 25 12 25 11 31 13
2Sam 27 32 39 12 25 23 29 18 13 19 27 31 39 33 37 23 29 33 43 26 22 51 39 25
1Kgs 53 46 28 34 18 38 51 66 28 29 43 33 34 31 34 34 24 46 21 43 29 53
2Kgs 18 25 27 44 27 33 20 29 37 36 21 21 25 29 38 20 41 37 37 21 26 20 37 20 30
1Chr 54 55 24 43 26 81 40 40 44 14 47 40 14 17 29 43 27 17 19 8 30 19 32 31 31 32 34 21 30
2Chr 17 18 17 22 14 42 22 18 31 19 23 16 22 15 19 14 19 34 11 37 20 12 21 27 28 23 9 27 36 27 21 33 25
    33 27 23
Ezra 11 70 13 24 17 22 28 36 15 44
Neh 11 20 32 23 19 19 73 18 38 39 36 47 31
Esth 22 23 15 17 14 14 10 17 32 3
Job 22 13 26 21 27 30 21 22 35 22 20 25 28 22 35 22 16 21 29 29 34 30 17 25 6 14 23 28 25 31 40 22 33 37
    16 33 24 41 30 24 34 17
Ps 6 12 8 8 12 10 17 9 20 18 7 8 6 7 5 11 15 50 14 9 13 31 6 10 22 12 14 9 11 12 24 11 22 22 28 12 40 22
    13 17 13 11 5 26 17 11 9 14 20 23 19 9 6 7 23 13 11 11 17 12 8 12 11 10 13 20 7 35 36 5 24 20 28 23
    10 12 20 72 13 19 16 8 18 12 13 17 7 18 52 17 16 15 5 23 11 13 12 9 9 5 8 28 22 35 45 48 43 13 31 7
    10 10 9 8 18 19 2 29 176 7 8 9 4 8 5 6 5 6 8 8 3 18 3 3 21 26 9 8 24 13 10 7 12 15 21 10 20 14 9 6
Prov 33 22 35 27 23 35 27 36 18 32 31 28 25 35 33 33 28 24 29 30 31 29 35 34 28 28 27 28 27 33 31
Eccl 18 26 22 16 20 12 29 17 18 20 10 14
Song 17 17 11 16 16 13 13 14
Isa 31 22 26 6 30 13 25 22 21 34 16 6 22 32 9 14 14 7 25 6 17 25 18 23 12 21 13 29 24 33 9 20 24 17 10
    22 38 22 8 31 29 25 28 28 25 13 15 22 26 11 23 15 12 17 13 12 21 14 21 22 11 12 19 12 25 24
Jer 19 37 25 31 31 30 34 22 26 25 23 17 27 22 21 21 27 23 15 18 14 30 40 10 38 24 22 17 32 24 40 44 26
    22 19 32 21 28 18 16 18 22 13 30 5 28 7 47 39 46 64 34
Lam 22 22 66 22 22
Ezek 28 10 27 17 17 14 27 18 11 22 25 28 23 23 8 63 24 32 14 49 32 31 49 27 17 21 36 26 21 26 18 32 33
    31 15 38 28 23 29 49 26 20 27 31 25 24 23 35
Dan 21 49 30 37 31 28 28 27 27 21 45 13
Hos 11 23 5 19 15 11 16 14 17 15 12 14 16 9
Joel 20 32 21
Amos 15 16 15 13 27 14 17 14 15
Obad 21
Jonah 17 10 10 11
Mic 16 13 12 13 15 16 20
Nah 15 13 19
Hab 17 20 19
Zeph 18 15 20
Hag 15 23
Zech 21 13 10 14 11 15 14 23 17 12 17 14 9 21
Mal 14 17 18 6
"""
_KJV_NT = """
Matt 25 23 17 25 48 34 29 34 38 42 30 50 58 36 39 28 27 35 30 34 46 46 39 51 46 75 66 20
Mark 45 28 35 41 43 56 37 38 50 52 33 44 37 72 47 20
Luke 80 52 38 44 39 49 50 56 62 42 54 59 35 35 32 31 37 43 48 47 38 71 56 53
John 51 25 36 54 47 71 53 59 41 42 57 50 38 31 27 33 26 40 42 31 25
Acts 26 47 26 37 42 15 60 40 43 48 30 25 52 28 41 40 34 28 41 38 40 30 35 27 27 32 44 31
Rom 32 29 31 25 21 23 25 39 33 21 36 21 14 23 33 27
1Cor 31 16 23 21 13 20 40 13 27 33 34 31 13 40 58 24
2Cor 24 17 18 18 21 18 16 24 15 18 33 21 14
Gal 24 21 29 31 26 18
Eph 23 22 21 32 33 24
Phil 30 30 21 23
Col 29 23 25 18
1Thess 10 20 13 18 28
2Thess 12 17 18
1Tim 20 15 16 16 25 21
2Tim 18 26 17 22
Titus 16 15 15
Phlm 25
Heb 14 18 19 16 14 20 28 13 28 39 40 29 25
Jas 27 26 18 17 20
1Pet 25 25 22 19 14
2Pet 21 22 18
1John 10 29 24 21 21
2John 13
3John 14
Jude 25
Rev 20 29 22 11 14 17 17 13 21 11 19 17 18 20 8 21 18 24 21 15 27 21
"""
# NRSVA: the KJV Old Testament followed, in the same testament, by these deuterocanonical books; the
# New Testament differs from KJV in two chapters only (3 John 1 has 15 verses, Revelation 12 has 18).
_NRSVA_DEUTEROCANON = """
Tob 22 14 17 21 22 18 16 21 6 13 18 22 17 15
Jdt 16 28 10 15 24 21 32 36 14 23 23 20 20 19 14 25
EsthGr 22 23 15 17 14 14 10 17 32 13 12 6 18 19 16 24
Wis 16 24 19 20 23 25 30 21 18 21 26 27 19 31 19 29 21 25 22
Sir 30 18 31 31 15 37 36 19 18 31 34 18 26 27 20 30 32 33 30 31 28 27 27 34 26 29 30 26 28 25 31 24 33
    31 26 31 31 34 35 30 22 25 33 23 26 20 25 25 16 29 30
Bar 22 35 37 37 9 73
PrAzar 68
Sus 64
Bel 42
1Macc 64 70 60 61 68 63 50 32 73 89 74 53 53 49 41 24
2Macc 36 32 40 50 27 31 42 36 29 38 38 45 26 46 39
1Esd 58 30 24 63 73 34 15 96 55
PrMan 15
AddPs 7
3Macc 29 33 30 21 51 41 23
2Esd 40 48 36 52 56 59 140 63 47 59 46 51 58 48 63 78
4Macc 35 24 21 26 38 35 23 29 32 21 27 19 27 20 32 25 24 24
"""


class Book(NamedTuple):
    osis_id: str
    verses: tuple[int, ...]  # verses in each chapter, chapter 1 first


def _parse_books(table: str) -> tuple[Book, ...]:
    books: list[Book] = []
    osis_id, counts = "", []
    for token in table.split():
        if token.isdigit():
            counts.append(int(token))
            continue
        if osis_id:
            books.append(Book(osis_id, tuple(counts)))
        osis_id, counts = token, []
    books.append(Book(osis_id, tuple(counts)))
    return tuple(books)


class VerseKey(NamedTuple):
    book: str  # OSIS book id: "Gen", "John", ...
    chapter: int  # 0 for a book introduction
    verse: int  # 0 for a book introduction or chapter heading


@dataclass(frozen=True)
class Versification:
    name: str
    old_testament: tuple[Book, ...]
    new_testament: tuple[Book, ...]

    def books(self, testament: str) -> tuple[Book, ...]:
        return {"ot": self.old_testament, "nt": self.new_testament}[testament]

    def verse_keys(self, books: Collection[str] | None = None) -> list[VerseKey]:
        """Every verse (no headings) of ``books`` (OSIS ids; all if None), in canonical order."""
        return [
            VerseKey(book.osis_id, chapter, verse)
            for book in self.old_testament + self.new_testament
            if books is None or book.osis_id in books
            for chapter, verses in enumerate(book.verses, start=1)
            for verse in range(1, verses + 1)
        ]

    def index_keys(self, testament: str) -> list[VerseKey | None]:
        """The key of each verse-index position of ``testament`` ("ot" or "nt"); ``None`` for the
        module and testament headings at positions 0 and 1."""
        keys: list[VerseKey | None] = [None, None]
        for book in self.books(testament):
            keys.append(VerseKey(book.osis_id, 0, 0))
            for chapter, verses in enumerate(book.verses, start=1):
                keys.append(VerseKey(book.osis_id, chapter, 0))
                keys.extend(VerseKey(book.osis_id, chapter, verse) for verse in range(1, verses + 1))
        return keys


def _nrsva_new_testament(kjv_new_testament: tuple[Book, ...]) -> tuple[Book, ...]:
    extra_verse = {"3John": 1, "Rev": 12}  # chapter that has one verse more than in KJV
    books = []
    for book in kjv_new_testament:
        verses = list(book.verses)
        if book.osis_id in extra_verse:
            verses[extra_verse[book.osis_id] - 1] += 1
        books.append(Book(book.osis_id, tuple(verses)))
    return tuple(books)


KJV = Versification("KJV", _parse_books(_KJV_OT), _parse_books(_KJV_NT))
NRSVA = Versification(
    "NRSVA",
    KJV.old_testament + _parse_books(_NRSVA_DEUTEROCANON),
    _nrsva_new_testament(KJV.new_testament),
)
VERSIFICATIONS = {v11n.name: v11n for v11n in (KJV, NRSVA)}
# The 66 books of the Protestant canon, in canonical order (the same in KJV and NRSVA).
PROTESTANT_CANON = tuple(book.osis_id for book in KJV.old_testament + KJV.new_testament)


# --- modules --------------------------------------------------------------------------------------


def read_conf(path: Path) -> tuple[str, dict[str, str]]:
    """(module name, settings) of a ``mods.d`` conf file. A key given several times keeps its first
    value; a line ending in a backslash continues on the next line."""
    name, settings = "", {}
    lines = iter(path.read_text(encoding="utf-8", errors="replace").splitlines())
    for line in lines:
        while line.endswith("\\"):
            line = line[:-1] + next(lines, "")
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]") and not name:
            name = line[1:-1]
        elif "=" in line:
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), value.strip())
    return name, settings


_INDEX_ENTRY = {"zText": struct.Struct("<IIH"), "zText4": struct.Struct("<III")}
_BLOCK_ENTRY = struct.Struct("<III")
_DECOMPRESS = {"ZIP": zlib.decompress, "BZIP2": bz2.decompress, "XZ": lzma.decompress}


@dataclass(frozen=True)
class SwordModule:
    name: str
    settings: dict[str, str]
    data_dir: Path

    @property
    def versification(self) -> Versification:
        name = self.settings.get("Versification", "KJV")
        if name not in VERSIFICATIONS:
            raise ValueError(
                f"SWORD module {self.name} uses the {name} versification; this reader knows only "
                f"{', '.join(VERSIFICATIONS)}."
            )
        return VERSIFICATIONS[name]

    @property
    def source_type(self) -> str:
        return self.settings.get("SourceType", "Plaintext")

    @property
    def encoding(self) -> str:
        return "utf-8" if self.settings.get("Encoding", "").upper() == "UTF-8" else "latin-1"

    def raw_entries(self, books: Collection[str] | None = None) -> Iterator[tuple[VerseKey, str]]:
        """(key, markup) of every non-empty index entry (of ``books`` only, if given: OSIS ids),
        headings and introductions included, in index order. A linked entry (one pointing at the same
        text as the entry before it, as for a verse range) is left out: its text was yielded under the
        first verse of the range."""
        driver = self.settings.get("ModDrv", "")
        if driver not in _INDEX_ENTRY:
            raise ValueError(f"SWORD module {self.name}: driver {driver!r} is not supported (zText, zText4).")
        compression = self.settings.get("CompressType", "ZIP")
        if compression not in _DECOMPRESS:
            raise ValueError(f"SWORD module {self.name}: CompressType {compression!r} is not supported.")
        if self.settings.get("CipherKey"):
            raise ValueError(f"SWORD module {self.name} is enciphered.")
        versification = self.versification  # raises for a versification without a table here
        for testament in ("ot", "nt"):
            if (self.data_dir / f"{testament}.bzv").exists():
                yield from self._testament_entries(
                    testament, versification, _INDEX_ENTRY[driver], _DECOMPRESS[compression], books
                )

    def _testament_entries(
        self,
        testament: str,
        versification: Versification,
        entry: struct.Struct,
        decompress: Callable[[bytes], bytes],
        books: Collection[str] | None,
    ) -> Iterator[tuple[VerseKey, str]]:
        blocks = list(_BLOCK_ENTRY.iter_unpack((self.data_dir / f"{testament}.bzs").read_bytes()))
        index = (self.data_dir / f"{testament}.bzv").read_bytes()
        keys = versification.index_keys(testament)
        if len(index) != len(keys) * entry.size:
            raise ValueError(
                f"SWORD module {self.name}: {testament}.bzv holds {len(index) / entry.size:g} entries, but "
                f"the {versification.name} versification has {len(keys)}; the module does not follow "
                f"the versification its conf names."
            )
        compressed = (self.data_dir / f"{testament}.bzz").read_bytes()
        cache: dict[int, bytes] = {}
        previous = None
        for key, (block, offset, size) in zip(keys, entry.iter_unpack(index), strict=True):
            if size == 0 or key is None or (block, offset, size) == previous:
                continue
            previous = block, offset, size
            if books is not None and key.book not in books:
                continue
            if block not in cache:
                start, length, expected = blocks[block]
                cache.clear()  # entries run through the blocks in order: keep just the current one
                cache[block] = decompress(compressed[start : start + length])
                if len(cache[block]) != expected:
                    raise ValueError(f"SWORD module {self.name}: block {block} of {testament} is corrupt.")
            yield key, cache[block][offset : offset + size].decode(self.encoding, errors="replace")

    def verses(self, books: Collection[str] | None = None) -> Iterator[tuple[VerseKey, str]]:
        """(key, plain text) of every verse with text (of ``books`` only, if given), in canonical order;
        no headings or introductions."""
        for key, markup in self.raw_entries(books):
            if key.verse:
                text = to_plain_text(markup, self.source_type)
                if text:
                    yield key, text


def installed_modules(root: Path = SWORD_ROOT) -> dict[str, SwordModule]:
    """Every module configured under ``root/mods.d``, by name."""
    modules = {}
    for conf in sorted((root / "mods.d").glob("*.conf")):
        name, settings = read_conf(conf)
        if name and "DataPath" in settings:
            modules[name] = SwordModule(name, settings, root / settings["DataPath"])
    return modules


# --- drop caps ------------------------------------------------------------------------------------

# Some printed Bibles (the Reina-Valera 1909 among them) set the opening word(s) of every chapter in
# capitals, as a drop cap: "EN el principio", "Y ACONTECIÓ", "DE VEINTICINCO años".
_CAPITALS_RUN = re.compile(r"\b[^\W\d_a-zß-ÿ]{2,}\b(?:\s+\b[^\W\d_a-zß-ÿ]+\b)*")
_SENTENCE_START = re.compile(r"(?:^|[.!?¡¿:]\s*)\W*$")


def undo_drop_caps(verses: dict[VerseKey, str]) -> dict[VerseKey, str]:
    """``verses`` with the drop cap of each chapter undone: in verse 1, the first run of all-capital
    words takes each word's most frequent case elsewhere in ``verses`` (title case for a word seen
    nowhere else), with a capital first letter at a sentence start. Other verses are unchanged."""
    forms: dict[str, Counter[str]] = {}
    for text in verses.values():
        for word in re.findall(r"[^\W\d_]+", text):
            if not word.isupper() or len(word) == 1:
                forms.setdefault(word.lower(), Counter())[word] += 1

    def usual_case(match: re.Match[str]) -> str:
        text = match.string
        words = re.split(r"(\s+)", match.group())
        for index in range(0, len(words), 2):
            seen = forms.get(words[index].lower())
            words[index] = seen.most_common(1)[0][0] if seen else words[index].title()
        if _SENTENCE_START.search(text[: match.start()]):
            words[0] = words[0][:1].upper() + words[0][1:]
        return "".join(words)

    return {
        key: _CAPITALS_RUN.sub(usual_case, text, count=1) if key.verse == 1 else text
        for key, text in verses.items()
    }


# --- markup to plain text -------------------------------------------------------------------------

_BOUNDARY = "\x00"  # stands in for removed markup until whitespace is settled
# Elements dropped with their content: notes, non-canonical (editorial) headings, speaker labels.
_DROPPED_ELEMENTS = {
    "OSIS": re.compile(
        r"<note\b[^>]*/>|<note\b.*?</note>|<title\b(?![^>]*canonical=\"true\")[^>]*>.*?</title>"
        r"|<speaker\b.*?</speaker>",
        re.DOTALL,
    ),
    "ThML": re.compile(r"<note\b[^>]*/>|<note\b.*?</note>|<div class=\"sechead\".*?</div>", re.DOTALL),
    "GBF": re.compile(r"<RF>.*?<Rf>|<TS>.*?<Ts>", re.DOTALL),  # footnotes, titles (case matters)
}
# The end of a book: anything after it (the WEB appends its glossary to Revelation 22:21) is not verse.
_OSIS_BOOK_END = re.compile(r"<div\b(?=[^>]*\btype=\"book\")(?=[^>]*\beID=)[^>]*/>")
# Tags that may sit inside a word ("preguntándo<transChange>le</transChange>"): removed without a break.
_INLINE_TAGS = re.compile(
    r"</?(?:transChange|hi|q|seg|name|foreign|divineName|abbr|rdg|catchWord|reference|index|font|i|b|u|"
    r"FI|Fi|FB|Fb|FU|Fu|FO|Fo|FR|Fr)\b[^>]*>"
)
_TAGS = re.compile(r"(?:<[^>]*>)+")
_OPENING = re.escape("([{¡¿“‘«—–-")
_CLOSING = re.escape(".,;:!?)]}»”’…—–-")
# A gap holding removed markup closes up after opening and before closing punctuation (and dashes);
# any other gap (removed markup and/or whitespace) becomes one space.
_SPACE_BEFORE_BREAK = re.compile(r"\s+(?=\x00)")
_BREAK_BEFORE_CLOSING = re.compile(rf"\x00[\s\x00]*(?=[{_CLOSING}])")
_BREAK_AFTER_OPENING = re.compile(rf"([{_OPENING}])\x00[\s\x00]*")
_GAP = re.compile(r"[\s\x00]+")


def to_plain_text(markup: str, source_type: str = "OSIS") -> str:
    """Plain text of one entry: notes, editorial headings and all tags removed, whitespace collapsed.

    Every removed element or tag other than character formatting (``<w>`` words, line and paragraph
    milestones, notes) counts as a word break, so ``God</w><note>…</note><w>created`` gives "God
    created"; such a break never adds a space before closing or after opening punctuation
    (``Christ</w>,<note>…</note>`` gives "Christ,"). Canonical titles (the psalms' superscriptions,
    which the Reina-Valera keeps inside verse 1) are kept.
    """
    if source_type == "OSIS" and 'type="book"' in markup:
        book_end = _OSIS_BOOK_END.search(markup)
        if book_end:
            markup = markup[: book_end.start()]
    dropped = _DROPPED_ELEMENTS.get(source_type)
    text = markup.replace(_BOUNDARY, "")
    if dropped is not None:
        text = dropped.sub(_BOUNDARY, text)
    text = html.unescape(_TAGS.sub(_BOUNDARY, _INLINE_TAGS.sub("", text)))
    text = _SPACE_BEFORE_BREAK.sub("", text)
    text = _BREAK_AFTER_OPENING.sub(r"\1", _BREAK_BEFORE_CLOSING.sub("", text))
    return _GAP.sub(" ", text).strip()
