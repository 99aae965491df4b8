"""Semantic role labelling (SRL) data: predicate-aware BIO tagging, one example per predicate frame.

Every example (a *frame*) is one predicate of one sentence::

    {"tokens": ["The", "council", "approved", "the", "budget", "."],
     "predicate_index": 2,
     "tags": ["B-ARG0", "I-ARG0", "B-V", "B-ARG1", "I-ARG1", "O"]}

``tags`` are PropBank-style BIO tags: ``O``, or ``B-``/``I-`` followed by a role label such as
``ARG0``..``ARG5``, ``ARGM-TMP``, ``ARGM-LOC``, ``V`` (the predicate itself), ``C-ARG1``
(continuation of a discontinuous argument) or ``R-ARG0`` (a relative pronoun referring to an argument).
A sentence with two predicates gives two frames with the same tokens.

Two file formats are read (both must be UTF-8; a leading byte-order mark is ignored):

**JSONL** (:func:`read_srl_jsonl`, suffix ``.jsonl``): one JSON object per line with the keys
``tokens`` (non-empty list of strings), ``predicate_index`` (integer index into ``tokens``) and
``tags`` (list of strings, one per token). Blank lines are skipped; other keys are ignored.

**CoNLL-2005-style columns** (:func:`read_conll_srl`, suffixes ``.conll``, ``.props``, ``.txt``):

* one token per line; sentences are separated by one or more blank (or whitespace-only) lines;
  there are no comment lines (a ``#`` in column 0 is a word);
* columns are separated by whitespace; every line of a sentence has the same number of columns;
* column 0 is the word;
* with N the number of predicates of the sentence, the column at position ``-(N+1)`` (counting
  from the end) holds the predicate lemma on the predicate's row and ``-`` elsewhere, so exactly N
  of its entries are not ``-``; the reader finds N as the smallest number for which this holds.
  Columns between the word and this one (POS tags, chunks, ...) are ignored;
* the last N columns are the argument columns, one per predicate, in sentence order of the
  predicates. Each entry is ``*`` optionally preceded by ``(LABEL`` (an argument starts on this
  token) and optionally followed by ``)`` (the open argument ends on this token): ``(A0*``, ``*``,
  ``*)``, ``(V*)``, ``(AM-TMP*)``. Arguments of one predicate cannot nest or overlap (BIO cannot
  represent that), so every ``(`` must be closed by a ``)`` before the next ``(`` and before the end
  of the sentence;
* a sentence whose lemma column is all ``-`` (N = 0, then it is the last column) has no predicate
  and gives no frame.

Example (word, POS, lemma, one argument column per predicate)::

    The      DT   -     (A0*      *
    company  NN   -     *)        *
    said     VBD  say   (V*)      *
    its      PRP$ -     (A1*      (A1*
    profits  NNS  -     *         *)
    rose     VBD  rise  *         (V*)
    sharply  RB   -     *)        (AM-MNR*)
    .        .    -     *         *

gives two frames: ``said`` (``predicate_index`` 2) with tags
``B-ARG0 I-ARG0 B-V B-ARG1 I-ARG1 I-ARG1 I-ARG1 O`` and ``rose`` (5) with
``O O O B-ARG1 I-ARG1 B-V B-ARGM-MNR O``.

CoNLL-2005 labels are renamed to the PropBank names used in the JSONL files: ``A0``..``A5`` ->
``ARG0``..``ARG5``, ``AA`` -> ``ARGA``, ``AM-X`` -> ``ARGM-X``, ``V`` -> ``V``, and the ``C-``/``R-``
prefixes are kept (``C-A1`` -> ``C-ARG1``, ``R-A0`` -> ``R-ARG0``, ``R-AM-LOC`` -> ``R-ARGM-LOC``).
Labels already in PropBank form (``ARG0``, ``ARGM-TMP``, as in CoNLL-2012) are kept as they are;
any other label is an error. An argument of several tokens becomes ``B-X I-X ...``, tokens outside
every argument ``O``. Each argument column gives one frame whose ``predicate_index`` is the row of
that predicate (where the lemma is, which must also be where its ``(V*`` span starts).

Both readers check every frame and raise :class:`~hf_nlpft.data.loading.DataError` (a ``ValueError``)
naming the file and line: missing file, bad UTF-8, bad JSON, missing key, wrong types, token/tag
count mismatch, ``predicate_index`` out of range, a malformed tag, ``I-X`` that does not follow
``B-X`` or ``I-X`` (an error, not silently repaired), a predicate token whose tag is not ``B-V``,
a frame with more than one ``B-V``, and (CoNLL) bad or unbalanced brackets, unknown labels,
ragged columns or a lemma column that cannot be found. :func:`load_srl` also rejects a split
without any frame.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datasets import Dataset, DatasetDict, Features, List, Value

from .loading import DataError

JSONL_SUFFIXES = (".jsonl",)
CONLL_SUFFIXES = (".conll", ".props", ".txt")
REQUIRED_KEYS = ("tokens", "predicate_index", "tags")
SRL_FEATURES = Features(
    {
        "id": Value("int64"),
        "tokens": List(Value("string")),
        "predicate_index": Value("int64"),
        "tags": List(Value("string")),
    }
)

_TAG = re.compile(r"^([BI])-(\S+)$")
# One argument-column entry: optional "(LABEL", the "*", optional ")".
_ARG_ENTRY = re.compile(r"^(?:\(([^()*\s]+))?\*(\))?$")
# CoNLL-2005 label -> PropBank label: optional C-/R- prefix, then the core role.
_CONLL_LABEL = re.compile(r"^((?:[CR]-)?)(A[0-5A]|AM-[A-Z]+|ARG[0-5A]|ARGM-[A-Z]+|V)$")


class _FrameError(Exception):
    """A problem in one frame, at token ``position`` (None: the frame as a whole)."""

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message)
        self.message = message
        self.position = position


# --- public API -----------------------------------------------------------------------------------


def read_srl_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Frames of a JSONL file (one ``{"tokens", "predicate_index", "tags"}`` object per line)."""
    frames = []
    for line_number, line in _lines(path):
        if not line.strip():
            continue
        where = f"{path}, line {line_number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: not valid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
        missing = [key for key in REQUIRED_KEYS if key not in record]
        if missing:
            raise DataError(f"{where}: missing key(s) {missing}; each line needs {list(REQUIRED_KEYS)}")
        tokens, predicate_index, tags = (record[key] for key in REQUIRED_KEYS)
        if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
            raise DataError(f"{where}: 'tokens' must be a non-empty list of strings")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise DataError(f"{where}: 'tags' must be a list of strings")
        if isinstance(predicate_index, bool) or not isinstance(predicate_index, int):
            raise DataError(f"{where}: 'predicate_index' must be an integer, got {predicate_index!r}")
        try:
            _check_frame(tokens, predicate_index, tags)
        except _FrameError as err:
            raise DataError(f"{where}: {err.message}") from None
        frames.append({"tokens": tokens, "predicate_index": predicate_index, "tags": tags})
    return frames


def read_conll_srl(path: str | Path) -> list[dict[str, Any]]:
    """Frames of a CoNLL-2005-style column file (format in the module docstring), one per predicate."""
    frames = []
    for rows in _sentences(path):
        frames.extend(_sentence_frames(path, rows))
    return frames


def load_srl(data_files: dict[str, str | Path]) -> DatasetDict:
    """Read each split's file (reader chosen by suffix) into a ``DatasetDict``.

    Columns: ``id`` (frame number in its file, from 0), ``tokens``, ``predicate_index`` and ``tags``
    (:data:`SRL_FEATURES`). Splits may use different formats.
    """
    if not data_files:
        raise DataError("No SRL data files given")
    splits = {}
    for split, path in data_files.items():
        suffix = Path(path).suffix.lower()
        if suffix in JSONL_SUFFIXES:
            frames = read_srl_jsonl(path)
        elif suffix in CONLL_SUFFIXES:
            frames = read_conll_srl(path)
        else:
            raise DataError(
                f"{path}: unsupported SRL file type {suffix!r}; use .jsonl or one of {list(CONLL_SUFFIXES)}"
            )
        if not frames:
            raise DataError(f"{path}: the {split} split has no examples (no predicate frame in the file)")
        columns = {
            "id": list(range(len(frames))),
            **{key: [frame[key] for frame in frames] for key in REQUIRED_KEYS},
        }
        splits[split] = Dataset.from_dict(columns, features=SRL_FEATURES, split=split)
    return DatasetDict(splits)


# --- checks shared by both readers ----------------------------------------------------------------


def _check_frame(tokens: list[str], predicate_index: int, tags: list[str]) -> None:
    """Raise :class:`_FrameError` unless the frame is consistent BIO with a ``B-V`` predicate."""
    if len(tokens) != len(tags):
        raise _FrameError(f"{len(tokens)} tokens but {len(tags)} tags; give one tag per token")
    if not 0 <= predicate_index < len(tokens):
        raise _FrameError(
            f"predicate_index {predicate_index} is out of range for a sentence of {len(tokens)} tokens "
            f"(valid: 0..{len(tokens) - 1})"
        )
    previous_label = None  # label of the previous token's B-/I- tag, None after O
    for position, tag in enumerate(tags):
        if tag == "O":
            previous_label = None
            continue
        match = _TAG.match(tag)
        if match is None:
            raise _FrameError(
                f"malformed tag {tag!r} at token {position} ({tokens[position]!r}); use O, B-LABEL or I-LABEL",
                position,
            )
        prefix, label = match.groups()
        if prefix == "I" and label != previous_label:
            after = (
                "an O tag or the sentence start" if previous_label is None else f"a tag of {previous_label}"
            )
            raise _FrameError(
                f"invalid BIO: {tag!r} at token {position} ({tokens[position]!r}) follows {after}; "
                f"an argument must start with B-{label}",
                position,
            )
        previous_label = label
    if tags[predicate_index] != "B-V":
        raise _FrameError(
            f"the predicate token {predicate_index} ({tokens[predicate_index]!r}) is tagged "
            f"{tags[predicate_index]!r}, expected 'B-V'",
            predicate_index,
        )
    extra = [position for position, tag in enumerate(tags) if tag == "B-V" and position != predicate_index]
    if extra:
        raise _FrameError(
            f"more than one B-V: token {extra[0]} ({tokens[extra[0]]!r}) besides the predicate token "
            f"{predicate_index}; one frame has one predicate",
            extra[0],
        )


def _lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, decoded line without its end-of-line), checking existence and UTF-8."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"SRL data file not found: {path}")
    with file.open("rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if line_number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}, line {line_number}: not valid UTF-8 (byte {err.start} of the line); "
                    "re-encode the file as UTF-8"
                ) from None
            yield line_number, line.rstrip("\r\n")


# --- CoNLL ----------------------------------------------------------------------------------------


def _sentences(path: str | Path) -> Iterator[list[tuple[int, list[str]]]]:
    """Sentences as lists of (line number, columns)."""
    rows: list[tuple[int, list[str]]] = []
    for line_number, line in _lines(path):
        columns = line.split()
        if columns:
            rows.append((line_number, columns))
        elif rows:
            yield rows
            rows = []
    if rows:
        yield rows


def _sentence_frames(path: str | Path, rows: list[tuple[int, list[str]]]) -> list[dict[str, Any]]:
    first_line, first_columns = rows[0]
    width = len(first_columns)
    for line_number, columns in rows:
        if len(columns) != width:
            raise DataError(
                f"{path}, line {line_number}: {len(columns)} columns, but the sentence starting at line "
                f"{first_line} has {width}; every line of a sentence needs the same columns"
            )
    if width < 2:
        raise DataError(
            f"{path}, line {first_line}: a CoNLL SRL line needs at least 2 columns (word and predicate "
            f"lemma or '-'), got {width}"
        )
    n_predicates = _count_predicates(rows, width)
    if n_predicates is None:
        raise DataError(
            f"{path}, lines {first_line}-{rows[-1][0]}: cannot find the predicate column: no column at "
            "position -(N+1) has exactly N non-'-' entries (N = number of argument columns)"
        )
    tokens = [columns[0] for _, columns in rows]
    lemma_column = width - 1 - n_predicates
    predicate_rows = [row for row, (_, columns) in enumerate(rows) if columns[lemma_column] != "-"]
    frames = []
    for k, predicate_index in enumerate(predicate_rows):
        column = width - n_predicates + k
        tags = _bracket_column_to_bio(path, rows, column)
        try:
            _check_frame(tokens, predicate_index, tags)
        except _FrameError as err:
            position = predicate_index if err.position is None else err.position
            raise DataError(
                f"{path}, line {rows[position][0]}: argument column {column} (predicate "
                f"{tokens[predicate_index]!r} on line {rows[predicate_index][0]}): {err.message}"
            ) from None
        frames.append({"tokens": tokens, "predicate_index": predicate_index, "tags": tags})
    return frames


def _count_predicates(rows: list[tuple[int, list[str]]], width: int) -> int | None:
    """The smallest N whose column -(N+1) has exactly N non-'-' entries (None if there is none)."""
    for n in range(width - 1):
        column = width - 1 - n
        if sum(columns[column] != "-" for _, columns in rows) == n:
            return n
    return None


def _bracket_column_to_bio(path: str | Path, rows: list[tuple[int, list[str]]], column: int) -> list[str]:
    tags = []
    open_label: str | None = None  # PropBank label of the argument open at this token
    open_line = 0
    for line_number, columns in rows:
        entry = columns[column]
        match = _ARG_ENTRY.match(entry)
        if match is None:
            raise DataError(
                f"{path}, line {line_number}: bad argument entry {entry!r} in column {column}; "
                "expected '*' with an optional '(LABEL' before and ')' after, e.g. (A0*  *  *)  (V*)"
            )
        opened, closes = match.group(1), match.group(2) is not None
        if opened is not None:
            if open_label is not None:
                raise DataError(
                    f"{path}, line {line_number}: unbalanced brackets in column {column}: {entry!r} opens "
                    f"an argument while the one opened on line {open_line} is not closed (nested or "
                    "overlapping arguments cannot be written as BIO)"
                )
            open_label, open_line = _propbank_label(path, line_number, opened), line_number
            tags.append(f"B-{open_label}")
        elif open_label is not None:
            tags.append(f"I-{open_label}")
        else:
            if closes:
                raise DataError(
                    f"{path}, line {line_number}: unbalanced brackets in column {column}: {entry!r} "
                    "closes an argument that was never opened"
                )
            tags.append("O")
        if closes:
            open_label = None
    if open_label is not None:
        raise DataError(
            f"{path}, line {open_line}: unbalanced brackets in column {column}: the argument opened here "
            f"is not closed by the end of the sentence (line {rows[-1][0]})"
        )
    return tags


def _propbank_label(path: str | Path, line_number: int, label: str) -> str:
    match = _CONLL_LABEL.match(label)
    if match is None:
        raise DataError(
            f"{path}, line {line_number}: unknown argument label {label!r}; expected A0-A5, AA, AM-X, V "
            "(optionally with a C- or R- prefix) or their PropBank forms ARG0, ARGM-X"
        )
    prefix, role = match.groups()
    if role.startswith("AM-"):
        role = "ARGM-" + role[3:]
    elif re.fullmatch(r"A[0-5A]", role):
        role = "ARG" + role[1:]
    return prefix + role
