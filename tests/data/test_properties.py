"""Property-based tests (hypothesis) of the data path: the file readers, tokenization and the tasks' collators, on
random unicode (empty strings, newlines, quotes, CJK, emoji, combining marks), random shapes and batch sizes 1..64.

The properties: a reader either raises a clean `DataError` or returns every row intact; a collated batch is
well-formed: consistent shapes, no sequence longer than the truncation length, padding where the attention mask is
0, and labels aligned with the tokens (-100 on padding, special tokens and non-first sub-words).
"""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import datasets
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import hf_nlpft
from hf_nlpft.data.loading import DataError, check_data_file, load_raw_datasets
from hf_nlpft.metrics import IGNORE_INDEX
from hf_nlpft.models.rnn_seq2seq import RnnSeq2SeqConfig, RnnSeq2SeqForConditionalGeneration
from hf_nlpft.tasks import TASKS
from hf_nlpft.tasks.token_classification import align_word_labels

# Any character but lone surrogates (not encodable as UTF-8, so no file can hold them).
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
# A field name: mostly a usual one (so that rows share fields, with clashing types), else anything short.
KEY = st.one_of(st.sampled_from(["text", "label", "tokens"]),
                st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6))
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_LENGTH = 12


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("datasets-cache"))


def read_or_data_error(path: Path, cache_dir: str):
    """The file read as a train split, or None after a DataError that names the file (the only allowed failure)."""
    try:
        raw = load_raw_datasets(data_files={"train": str(path)}, cache_dir=cache_dir)
    except DataError as err:
        event(f"DataError: {str(err).replace(str(path), 'FILE')[:60]}")
        assert str(path) in str(err)
        return None
    event("read")
    return raw


# --- readers -------------------------------------------------------------------------------------------------------

JSON_VALUE = st.one_of(st.none(), TEXT, st.integers(-(2**31), 2**31), st.booleans(), st.lists(TEXT, max_size=3))


@SETTINGS
@given(rows=st.lists(st.dictionaries(KEY, JSON_VALUE, min_size=1, max_size=3), max_size=8),
       blank_lines=st.lists(st.integers(0, 8), max_size=2))
def test_jsonl_reader_returns_every_row_or_a_data_error(rows, blank_lines, cache_dir):
    with tempfile.TemporaryDirectory() as folder:
        lines = [json.dumps(row, ensure_ascii=False) for row in rows]
        for position in blank_lines:
            lines.insert(min(position, len(lines)), "")
        path = Path(folder) / "train.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        raw = read_or_data_error(path, cache_dir)
    if raw is None:
        return
    train = raw["train"]
    assert len(train) == len(rows)
    for index, row in enumerate(rows):  # every value back, missing fields as None
        for key, value in row.items():
            assert train[index][key] == value


CSV_CELL = st.one_of(TEXT, st.sampled_from(["a, with a comma", 'a "quoted" word', "two\nlines", "", "NA", "3", "中文"]))


@SETTINGS
@given(header=st.lists(st.sampled_from(["text", "label", "id", "note"]), min_size=1, max_size=3, unique=True),
       cells=st.lists(st.lists(CSV_CELL, min_size=3, max_size=3), max_size=8))
def test_csv_reader_returns_every_row_or_a_data_error(header, cells, cache_dir):
    rows = [row[: len(header)] for row in cells]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
        raw = read_or_data_error(path, cache_dir)
    if raw is None:
        return
    assert raw["train"].column_names == header and len(raw["train"]) == len(rows)
    # pandas reads number-like columns as numbers and "", "NA", ... as missing; every text it keeps is intact
    for index, row in enumerate(rows):
        for column, cell in zip(header, row):
            value = raw["train"][index][column]
            assert value == cell or not isinstance(value, str), (column, cell, value)


@SETTINGS
@given(data=st.binary(max_size=200), suffix=st.sampled_from([".jsonl", ".csv", ".txt"]))
def test_check_data_file_on_arbitrary_bytes_raises_only_data_errors(data, suffix):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"train{suffix}"
        path.write_bytes(data)
        try:
            assert check_data_file(str(path), field_types=True) in ("json", "csv", "text")
        except DataError as err:
            event(f"DataError: {str(err).replace(str(path), 'FILE')[:40]}")
            assert str(path) in str(err)


# --- tokenization and collators --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    corpus = ["a good film with great acting", "un café noir", "我爱北京天安门", "the end."] * 5
    return hf_nlpft.train_tokenizer(corpus, vocab_size=120, model="wordpiece", min_frequency=1)


class Args:
    max_seq_length = MAX_LENGTH
    preprocessing_num_workers = None


def no_wait(desc=""):
    import contextlib

    return contextlib.nullcontext()


def preprocess(task, rows: dict, tokenizer, label_names):
    columns = {key: key for key in rows}
    raw = datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)})
    return task.preprocess(raw, tokenizer, label_names, columns, Args, no_wait)["train"]


def assert_padded(batch, tokenizer, size: int) -> None:
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape == mask.shape and ids.shape[0] == size and ids.shape[1] <= MAX_LENGTH
    assert torch.all(ids[mask == 0] == tokenizer.pad_token_id)
    assert torch.all(mask.sum(1) >= 1)  # the special tokens at least


@SETTINGS
@given(texts=st.lists(TEXT, min_size=1, max_size=64), seed=st.integers(0, 2**16))
def test_text_classification_batches(texts, seed, tokenizer):
    task = TASKS["text-classification"]
    labels = [["neg", "pos"][(seed + i) % 2] for i in range(len(texts))]
    processed = preprocess(task, {"text": texts, "label": labels}, tokenizer, ["neg", "pos"])
    batch = task.collator(tokenizer)([processed[i] for i in range(len(processed))])
    assert_padded(batch, tokenizer, len(texts))
    assert batch["labels"].tolist() == [["neg", "pos"].index(label) for label in labels]
    for row, text in enumerate(texts):  # each row: its own tokens, truncated, then padding
        expected = tokenizer(text, truncation=True, max_length=MAX_LENGTH)["input_ids"]
        assert batch["input_ids"][row, : len(expected)].tolist() == expected
        assert int(batch["attention_mask"][row].sum()) == len(expected)


WORDS = st.lists(TEXT.filter(lambda word: not any(c.isspace() for c in word)), min_size=1, max_size=10)


@SETTINGS
@given(sentences=st.lists(WORDS, min_size=1, max_size=64), seed=st.integers(0, 2**16))
def test_token_classification_batches_keep_one_label_per_word(sentences, seed, tokenizer):
    task = TASKS["token-classification"]
    names = ["B-X", "I-X", "O"]
    tags = [[names[(seed + i + j) % 3] for j in range(len(words))] for i, words in enumerate(sentences)]
    processed = preprocess(task, {"tokens": sentences, "tags": tags}, tokenizer, names)
    batch = task.collator(tokenizer)([processed[i] for i in range(len(processed))])
    assert_padded(batch, tokenizer, len(sentences))
    labels = batch["labels"]
    assert labels.shape == batch["input_ids"].shape
    assert torch.all(labels[batch["attention_mask"] == 0] == IGNORE_INDEX)
    for row, (words, word_tags) in enumerate(zip(sentences, tags)):
        encoded = tokenizer(words, is_split_into_words=True, truncation=True, max_length=MAX_LENGTH)
        word_ids = encoded.word_ids()
        expected = align_word_labels(word_ids, [names.index(tag) for tag in word_tags])
        assert labels[row, : len(expected)].tolist() == expected
        # the labelled positions are the first sub-words of distinct words, in order
        labelled_words = [word_ids[p] for p, label in enumerate(expected) if label != IGNORE_INDEX]
        assert labelled_words == sorted(set(labelled_words))


@pytest.fixture(scope="module")
def seq2seq_model(tokenizer):
    config = RnnSeq2SeqConfig(vocab_size=len(tokenizer), embedding_size=4, hidden_size=4, attention_size=4,
                              encoder_num_layers=1, decoder_num_layers=1, pad_token_id=tokenizer.pad_token_id,
                              bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
                              decoder_start_token_id=tokenizer.cls_token_id)
    return RnnSeq2SeqForConditionalGeneration(config)


@SETTINGS
@given(pairs=st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=64))
def test_seq2seq_batches_pad_labels_with_ignore_index(pairs, tokenizer, seq2seq_model):
    task = TASKS["translation"]
    sources, targets = [s for s, _ in pairs], [t for _, t in pairs]
    processed = preprocess(task, {"source": sources, "target": targets}, tokenizer, [])
    batch = task.collator(tokenizer, seq2seq_model)([processed[i] for i in range(len(processed))])
    assert_padded(batch, tokenizer, len(pairs))
    labels, decoder_inputs = batch["labels"], batch["decoder_input_ids"]
    assert labels.shape == decoder_inputs.shape and labels.shape[0] == len(pairs) and labels.shape[1] <= MAX_LENGTH
    for row, target in enumerate(targets):
        expected = tokenizer(text_target=target, truncation=True, max_length=MAX_LENGTH)["input_ids"]
        assert labels[row].tolist() == expected + [IGNORE_INDEX] * (labels.shape[1] - len(expected))
    # teacher forcing: the start token, then the labels shifted right, padding as the pad token
    assert torch.all(decoder_inputs[:, 0] == seq2seq_model.config.decoder_start_token_id)
    shifted = labels[:, :-1].masked_fill(labels[:, :-1] == IGNORE_INDEX, tokenizer.pad_token_id)
    assert torch.equal(decoder_inputs[:, 1:], shifted)
