"""Tests for the SRL readers and validation, on the hand-written fixture in tests/fixtures/srl."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from datasets import DatasetDict, Features, Sequence, Value

from hf_nlpft.data.loading import DataError
from hf_nlpft.data.srl import SRL_FEATURES, load_srl, read_conll_srl, read_srl_jsonl

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "srl"
SPLIT_FILES = {split: str(FIXTURES / f"{split}.jsonl") for split in ("train", "validation", "test")}
SPLIT_SIZES = {"train": 43, "validation": 10, "test": 10}

# A correct frame, reused (and broken) by the validation tests.
GOOD = {
    "tokens": ["Police", "arrested", "him", "."],
    "predicate_index": 1,
    "tags": ["B-ARG0", "B-V", "B-ARG1", "O"],
}


def write_jsonl(tmp_path: Path, *records: dict | str, name: str = "bad.jsonl") -> Path:
    """A JSONL file with ``records`` (dicts are dumped, strings written as they are), one per line."""
    path = tmp_path / name
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8"
    )
    return path


def broken(**changes) -> dict:
    return {**GOOD, **changes}


def assert_names(err: pytest.ExceptionInfo, path: Path, line: int, *fragments: str) -> None:
    message = str(err.value)
    assert f"{path}, line {line}:" in message, message
    for fragment in fragments:
        assert fragment in message, message


# --- JSONL on the fixture -------------------------------------------------------------------------


@pytest.mark.parametrize("split", SPLIT_SIZES)
def test_jsonl_fixture_counts(split):
    frames = read_srl_jsonl(SPLIT_FILES[split])
    assert len(frames) == SPLIT_SIZES[split]
    for frame in frames:
        assert set(frame) == {"tokens", "predicate_index", "tags"}
        assert frame["tags"][frame["predicate_index"]] == "B-V"
        assert frame["tags"].count("B-V") == 1


def test_jsonl_first_train_frame():
    assert read_srl_jsonl(SPLIT_FILES["train"])[0] == {
        "tokens": ["The", "city", "council", "approved", "a", "new", "budget", "on", "Tuesday", "."],
        "predicate_index": 3,
        "tags": [
            "B-ARG0", "I-ARG0", "I-ARG0",  # The city council
            "B-V",  # approved
            "B-ARG1", "I-ARG1", "I-ARG1",  # a new budget
            "B-ARGM-TMP", "I-ARGM-TMP",  # on Tuesday
            "O",
        ],
    }  # fmt: skip


def test_fixture_label_set_and_two_predicate_sentences():
    frames = [frame for path in SPLIT_FILES.values() for frame in read_srl_jsonl(path)]
    labels = {tag[2:] for frame in frames for tag in frame["tags"] if tag != "O"}
    assert labels == {
        "V", "ARG0", "ARG1", "ARG2", "ARG3", "ARG4", "C-ARG1", "R-ARG0",
        "ARGM-TMP", "ARGM-LOC", "ARGM-MNR", "ARGM-CAU", "ARGM-MOD", "ARGM-NEG",
    }  # fmt: skip
    sentences = Counter(tuple(frame["tokens"]) for frame in frames)
    assert sum(count == 2 for count in sentences.values()) >= 5
    assert sum(len(path.read_bytes()) for path in FIXTURES.iterdir()) < 30_000


# --- CoNLL on the fixture -------------------------------------------------------------------------


def test_conll_sample():
    frames = read_conll_srl(FIXTURES / "sample.conll")
    # 6 sentences: 1 + 2 + 1 + 1 + 2 predicates, and one sentence without a predicate.
    assert len(frames) == 7
    assert [frame["predicate_index"] for frame in frames] == [3, 2, 5, 4, 4, 3, 7]
    said, rose = frames[1], frames[2]
    tokens = ["The", "company", "said", "its", "profits", "rose", "sharply", "."]
    assert said == {
        "tokens": tokens,
        "predicate_index": 2,
        "tags": ["B-ARG0", "I-ARG0", "B-V", "B-ARG1", "I-ARG1", "I-ARG1", "I-ARG1", "O"],
    }
    assert rose == {
        "tokens": tokens,
        "predicate_index": 5,
        "tags": ["O", "O", "O", "B-ARG1", "I-ARG1", "B-V", "B-ARGM-MNR", "O"],
    }
    # C-A1 -> C-ARG1 (discontinuous argument), AM-NEG -> ARGM-NEG, R-A0 -> R-ARG0.
    assert frames[4]["tags"] == [
        "B-ARG1", "I-ARG1", "O", "B-ARG0", "B-V", "O", "B-C-ARG1", "I-C-ARG1", "I-C-ARG1", "O",
    ]  # fmt: skip
    assert frames[3]["tags"][3] == "B-ARGM-NEG"
    assert frames[5]["tags"][:4] == ["B-ARG0", "I-ARG0", "B-R-ARG0", "B-V"]
    # Every CoNLL frame is also in train.jsonl, tag for tag.
    train = read_srl_jsonl(SPLIT_FILES["train"])
    assert all(frame in train for frame in frames)


def test_conll_label_renaming_and_extra_columns(tmp_path):
    path = tmp_path / "renamed.props"
    path.write_text(
        "Sue   x  y  -     (A0*)     \n"
        "gave  x  y  give  (V*)      \n"
        "it    x  y  -     (A1*)     \n"
        "back  x  y  -     (AM-DIR*) \n"
        "to    x  y  -     (ARG2*    \n"
        "Al    x  y  -     *)        \n"
        "\n\n\n"
        "Go    x  y  go    (V*)\n",  # no trailing blank line; an already-PropBank label above
        encoding="utf-8",
    )
    frames = read_conll_srl(path)
    assert frames == [
        {
            "tokens": ["Sue", "gave", "it", "back", "to", "Al"],
            "predicate_index": 1,
            "tags": ["B-ARG0", "B-V", "B-ARG1", "B-ARGM-DIR", "B-ARG2", "I-ARG2"],
        },
        {"tokens": ["Go"], "predicate_index": 0, "tags": ["B-V"]},
    ]


# --- load_srl -------------------------------------------------------------------------------------


def test_load_srl_features():
    raw = load_srl(SPLIT_FILES)
    assert isinstance(raw, DatasetDict)
    assert {split: len(dataset) for split, dataset in raw.items()} == SPLIT_SIZES
    expected = Features(
        {
            "id": Value("int64"),
            "tokens": Sequence(Value("string")),
            "predicate_index": Value("int64"),
            "tags": Sequence(Value("string")),
        }
    )
    for dataset in raw.values():
        assert dataset.column_names == ["id", "tokens", "predicate_index", "tags"]
        assert dataset.features == expected == SRL_FEATURES
    assert raw["train"]["id"][:3] == [0, 1, 2]
    assert raw["train"][0]["tags"][3] == "B-V"


def test_load_srl_mixed_formats():
    raw = load_srl({"train": SPLIT_FILES["train"], "test": str(FIXTURES / "sample.conll")})
    assert len(raw["train"]) == 43 and len(raw["test"]) == 7
    assert raw["test"][1]["predicate_index"] == 2


def test_load_srl_unsupported_suffix(tmp_path):
    path = tmp_path / "frames.csv"
    path.write_text("tokens\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"frames\.csv: unsupported SRL file type '\.csv'"):
        load_srl({"train": str(path)})


@pytest.mark.parametrize(
    ("name", "content"),
    [("empty.jsonl", ""), ("blank.jsonl", "\n\n"), ("nopred.conll", "Good - \nmorning - \n")],
)
def test_load_srl_empty_split(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_srl({"train": SPLIT_FILES["train"], "validation": str(path)})
    assert f"{path}: the validation split has no examples" in str(err.value)


# --- validation errors: both formats --------------------------------------------------------------


@pytest.mark.parametrize("reader", [read_srl_jsonl, read_conll_srl])
def test_missing_file(tmp_path, reader):
    path = tmp_path / "nowhere.jsonl"
    with pytest.raises(DataError, match="not found") as err:
        reader(path)
    assert str(path) in str(err.value)
    with pytest.raises(DataError, match="not found"):
        load_srl({"train": str(path)})


@pytest.mark.parametrize(("reader", "name"), [(read_srl_jsonl, "bad.jsonl"), (read_conll_srl, "bad.conll")])
def test_non_utf8(tmp_path, reader, name):
    path = tmp_path / name
    good_line = json.dumps(GOOD) if name.endswith(".jsonl") else "Police - *"
    path.write_bytes(good_line.encode() + b"\n" + "Café - *\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        reader(path)
    assert_names(err, path, 2, "not valid UTF-8")


def test_utf8_bom_is_ignored(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n")
    assert read_srl_jsonl(path) == [GOOD]


# --- validation errors: JSONL ---------------------------------------------------------------------


def test_jsonl_not_json(tmp_path):
    path = write_jsonl(tmp_path, GOOD, "", '{"tokens": ["a"],')
    with pytest.raises(DataError) as err:
        read_srl_jsonl(path)
    assert_names(err, path, 3, "not valid JSON")


def test_jsonl_not_an_object(tmp_path):
    path = write_jsonl(tmp_path, '["Police", "arrested"]')
    with pytest.raises(DataError) as err:
        read_srl_jsonl(path)
    assert_names(err, path, 1, "expected a JSON object")


def test_jsonl_missing_key(tmp_path):
    record = {key: value for key, value in GOOD.items() if key != "predicate_index"}
    path = write_jsonl(tmp_path, GOOD, record)
    with pytest.raises(DataError) as err:
        read_srl_jsonl(path)
    assert_names(err, path, 2, "missing key(s) ['predicate_index']")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"tokens": []}, "'tokens' must be a non-empty list of strings"),
        ({"tokens": "Police arrested him ."}, "'tokens' must be a non-empty list of strings"),
        ({"tags": "B-ARG0 B-V B-ARG1 O"}, "'tags' must be a list of strings"),
        ({"predicate_index": "1"}, "'predicate_index' must be an integer, got '1'"),
        ({"predicate_index": True}, "'predicate_index' must be an integer"),
    ],
)
def test_jsonl_wrong_types(tmp_path, change, fragment):
    path = write_jsonl(tmp_path, broken(**change))
    with pytest.raises(DataError) as err:
        read_srl_jsonl(path)
    assert_names(err, path, 1, fragment)


def test_jsonl_length_mismatch(tmp_path):
    path = write_jsonl(tmp_path, GOOD, GOOD, broken(tags=["B-ARG0", "B-V", "B-ARG1"]))
    with pytest.raises(DataError) as err:
        read_srl_jsonl(path)
    assert_names(err, path, 3, "4 tokens but 3 tags")


@pytest.mark.parametrize("index", [4, 10, -1])
def test_jsonl_predicate_index_out_of_range(tmp_path, index):
    path = write_jsonl(tmp_path, GOOD, broken(predicate_index=index))
    with pytest.raises(DataError) as err:
        read_srl_jsonl(path)
    assert_names(err, path, 2, f"predicate_index {index} is out of range", "sentence of 4 tokens")


@pytest.mark.parametrize(
    ("tags", "fragment"),
    [
        (
            ["I-ARG0", "B-V", "B-ARG1", "O"],
            "'I-ARG0' at token 0 ('Police') follows an O tag or the sentence start",
        ),
        (["B-ARG0", "B-V", "I-ARG1", "O"], "'I-ARG1' at token 2 ('him') follows a tag of V"),
        (["B-ARG0", "B-V", "O", "I-ARG1"], "'I-ARG1' at token 3 ('.') follows an O tag"),
    ],
)
def test_jsonl_invalid_bio(tmp_path, tags, fragment):
    path = write_jsonl(tmp_path, broken(tags=tags))
    with pytest.raises(DataError) as err:
        read_srl_jsonl(path)
    assert_names(err, path, 1, "invalid BIO", fragment)


@pytest.mark.parametrize("tag", ["ARG0", "B-", "X-ARG0", "b-ARG0", "B ARG0"])
def test_jsonl_malformed_tag(tmp_path, tag):
    path = write_jsonl(tmp_path, broken(tags=[tag, "B-V", "B-ARG1", "O"]))
    with pytest.raises(DataError) as err:
        read_srl_jsonl(path)
    assert_names(err, path, 1, f"malformed tag {tag!r} at token 0")


def test_jsonl_predicate_not_b_v(tmp_path):
    path = write_jsonl(tmp_path, GOOD, broken(predicate_index=2))
    with pytest.raises(DataError) as err:
        read_srl_jsonl(path)
    assert_names(err, path, 2, "the predicate token 2 ('him') is tagged 'B-ARG1', expected 'B-V'")


def test_jsonl_two_b_v(tmp_path):
    path = write_jsonl(tmp_path, broken(tags=["B-ARG0", "B-V", "B-V", "O"]))
    with pytest.raises(DataError) as err:
        read_srl_jsonl(path)
    assert_names(err, path, 1, "more than one B-V: token 2 ('him')")


# --- validation errors: CoNLL ---------------------------------------------------------------------

GOOD_CONLL = "Police NNS - (A0*)\narrested VBD arrest (V*)\nhim PRP - (A1*)\n. . - *\n"


def write_conll(tmp_path: Path, text: str) -> Path:
    """``GOOD_CONLL`` (lines 1-4), a blank line 5, then ``text`` from line 6."""
    path = tmp_path / "bad.conll"
    path.write_text(GOOD_CONLL + "\n" + text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        # an argument opened on line 8 and never closed
        ("Police - (A0*)\narrested arrest (V*)\nhim - (A1*\n. - *\n", 8, "unbalanced brackets in column 2: the argument opened here is not closed"),
        # a ')' with nothing open
        ("Police - (A0*)\narrested arrest (V*)\nhim - *)\n", 8, "closes an argument that was never opened"),
        # a second '(' while one is open (nesting)
        ("Police - (A0*\narrested arrest (V*)\nhim - *)\n", 7, "opens an argument while the one opened on line 6 is not closed"),
    ],
)  # fmt: skip
def test_conll_unbalanced_brackets(tmp_path, text, line, fragment):
    path = write_conll(tmp_path, text)
    with pytest.raises(DataError) as err:
        read_conll_srl(path)
    assert_names(err, path, line, fragment)


@pytest.mark.parametrize("entry", ["A0*", "(A0", "**", "(A0*A0)", "(A0*))", "x"])
def test_conll_bad_entry(tmp_path, entry):
    path = write_conll(tmp_path, f"Police - {entry}\narrested arrest (V*)\n")
    with pytest.raises(DataError) as err:
        read_conll_srl(path)
    assert_names(err, path, 6, f"bad argument entry {entry!r} in column 2")


def test_conll_unknown_label(tmp_path):
    path = write_conll(tmp_path, "Police - (AGENT*)\narrested arrest (V*)\n")
    with pytest.raises(DataError) as err:
        read_conll_srl(path)
    assert_names(err, path, 6, "unknown argument label 'AGENT'")


def test_conll_ragged_columns(tmp_path):
    path = write_conll(tmp_path, "Police NNS - (A0*)\narrested arrest (V*)\n")
    with pytest.raises(DataError) as err:
        read_conll_srl(path)
    assert_names(err, path, 7, "3 columns, but the sentence starting at line 6 has 4")


def test_conll_single_column(tmp_path):
    path = write_conll(tmp_path, "Police\narrested\n")
    with pytest.raises(DataError) as err:
        read_conll_srl(path)
    assert_names(err, path, 6, "at least 2 columns")


def test_conll_predicate_column_not_found(tmp_path):
    # Two lemmas but only one argument column.
    path = write_conll(tmp_path, "Police police (A0*)\narrested arrest (V*)\n")
    with pytest.raises(DataError, match="cannot find the predicate column") as err:
        read_conll_srl(path)
    assert f"{path}, lines 6-7:" in str(err.value)


def test_conll_predicate_not_b_v(tmp_path):
    # The lemma is on line 7 ("arrested") but the V span is on line 8 ("him").
    path = write_conll(tmp_path, "Police - (A0*)\narrested arrest *\nhim - (V*)\n")
    with pytest.raises(DataError) as err:
        read_conll_srl(path)
    assert_names(err, path, 7, "predicate 'arrested' on line 7", "tagged 'O', expected 'B-V'")


def test_conll_two_v_spans(tmp_path):
    path = write_conll(tmp_path, "Police - (A0*)\narrested arrest (V*)\nhim - (V*)\n")
    with pytest.raises(DataError) as err:
        read_conll_srl(path)
    assert_names(err, path, 8, "more than one B-V: token 2 ('him')")


def test_conll_multi_token_v_span(tmp_path):
    # A V span of two tokens (a phrasal verb) is B-V I-V; the predicate is its first token.
    path = tmp_path / "phrasal.conll"
    path.write_text("They - (A0*)\ngave give (V*\nup - *)\n. - *\n", encoding="utf-8")
    assert read_conll_srl(path) == [
        {"tokens": ["They", "gave", "up", "."], "predicate_index": 1, "tags": ["B-ARG0", "B-V", "I-V", "O"]}
    ]
