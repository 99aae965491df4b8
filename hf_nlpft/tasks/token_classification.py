"""Token classification (NER, POS): one tag per word, read from the first sub-word token of each word."""

from collections.abc import Iterator
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification, EvalPrediction

from ..data.loading import DataError, resolve_column
from ..metrics import IGNORE_INDEX, load_metric, token_classification_metrics
from ..training import save_json
from .text_classification import label_names_of

TOKENS_COLUMNS = ("tokens", "words")
TAGS_COLUMNS = ("ner_tags", "pos_tags", "tags", "labels")


def check_lengths(dataset: datasets.Dataset, split: str, tokens_column: str, tags_column: str) -> None:
    """Every example needs one tag per token; name the first that has not."""
    for index, (tokens, tags) in enumerate(zip(dataset[tokens_column], dataset[tags_column])):
        if len(tokens) != len(tags):
            raise DataError(
                f"{split} split, example {index} (0-based row of the file): {len(tokens)} tokens but {len(tags)} tags"
            )


def is_bio(label_names: list[str]) -> bool:
    return all(name == "O" or name[:2] in ("B-", "I-") for name in label_names)


def align_word_labels(word_ids: list[int | None], word_values: list[int], fill: int = -100) -> list[int]:
    """Per-token values from per-word ones: the first sub-word of each word carries it, the rest get `fill`."""
    aligned, previous = [], None
    for word_id in word_ids:
        aligned.append(fill if word_id is None or word_id == previous else word_values[word_id])
        previous = word_id
    return aligned


def first_token_logits(logits: np.ndarray, word_ids: list[int | None], num_words: int) -> list[np.ndarray | None]:
    """The logits of each word's first sub-word (None for words the tokenizer dropped or truncated)."""
    per_word: list[np.ndarray | None] = [None] * num_words
    for position, word_id in enumerate(word_ids):
        if word_id is not None and per_word[word_id] is None:
            per_word[word_id] = logits[position]
    return per_word


class TokenClassificationTask:
    name = "token-classification"
    auto_class = AutoModelForTokenClassification
    pipeline_tag = "token-classification"
    main_metric = "f1"
    model_overrides: dict = {}
    generative = False  # scored on logits, not on generated text

    def resolve_columns(self, dataset: datasets.Dataset, wanted: dict, require_labels: bool = True) -> dict[str, str]:
        columns = {"tokens": resolve_column(dataset, wanted.get("tokens"), TOKENS_COLUMNS, "tokens")}
        if require_labels:
            columns["tags"] = resolve_column(dataset, wanted.get("tags"), TAGS_COLUMNS, "tags")
        return columns

    def label_names(self, raw: datasets.DatasetDict, columns: dict[str, str]) -> list[str]:
        for split in raw:
            check_lengths(raw[split], split, columns["tokens"], columns["tags"])
        return label_names_of(raw, columns["tags"], sequence=True)

    def texts(self, dataset: datasets.Dataset, columns: dict[str, str]) -> Iterator[str]:
        return (" ".join(tokens) for tokens in dataset[columns["tokens"]])

    def encode_words(self, tokenizer, words: list[list[str]], max_length: int, **kwargs):
        return tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_length, **kwargs)

    def preprocess(self, raw, tokenizer, label_names, columns, args, main_process_first):
        feature = raw["train"].features[columns["tags"]].feature
        index = {name: i for i, name in enumerate(label_names)}

        def encode(batch):
            encoded = self.encode_words(tokenizer, batch[columns["tokens"]], args.max_seq_length)
            if columns["tags"] in batch:
                labels = []
                for row, tags in enumerate(batch[columns["tags"]]):
                    ids = list(tags) if isinstance(feature, datasets.ClassLabel) else [index[str(t)] for t in tags]
                    labels.append(align_word_labels(encoded.word_ids(row), ids))
                encoded["labels"] = labels
            self.add_inputs(encoded, batch, columns)
            return encoded

        with main_process_first(desc="tokenize"):
            return raw.map(
                encode,
                batched=True,
                remove_columns=raw["train"].column_names,
                num_proc=args.preprocessing_num_workers,
                desc="Tokenizing and aligning tags",
            )

    def add_inputs(self, encoded, batch, columns) -> None:
        """Extra model inputs beyond the tokens (SRL adds the predicate indicator)."""

    def collator(self, tokenizer, model=None):
        return DataCollatorForTokenClassification(tokenizer)

    def compute_metrics(self, label_names: list[str], tokenizer=None):
        def compute(prediction: EvalPrediction) -> dict[str, float]:
            logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
            return self.metrics(logits, prediction.label_ids, label_names)

        return compute

    def metrics(self, logits: np.ndarray, labels: np.ndarray, label_names: list[str]) -> dict:
        """Entity-level seqeval scores for BIO tag sets (NER, SRL); token-level macro scores otherwise (POS)."""
        if is_bio(label_names):
            return token_classification_metrics(logits, labels, label_names)
        keep = labels != IGNORE_INDEX
        predictions, references = logits.argmax(-1)[keep], labels[keep]
        # Averaged over the tags that occur (in references or predictions): with dozens of POS tags, one absent
        # from a small split would count as 0 and hold even a perfect tagger's macro scores below 1.
        present = sorted(set(predictions.tolist()) | set(references.tolist()))
        scores = load_metric("precision_recall_f1").compute(
            predictions=predictions, references=references, labels=present, label_names=label_names
        )
        return {
            "precision": scores["precision_macro"],
            "recall": scores["recall_macro"],
            "f1": scores["f1_macro"],
            "accuracy": float((predictions == references).mean()),
        }

    def write_reports(self, prediction_output, label_names: list[str], output_dir: Path, **context) -> list[str]:
        logits = prediction_output.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        report = self.metrics(logits, prediction_output.label_ids, label_names)
        save_json(output_dir / "classification_report.json", report)
        return []

    def input_problem(self, row: dict, columns: dict[str, str]) -> str | None:
        """Why `row` (a line of `hf-nlpft predict` input) cannot be predicted on; None when it can."""
        tokens = row[columns["tokens"]]
        if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
            return f"{columns['tokens']!r} must be a list of strings (one per word)"
        return None

    def model_inputs(self, tokenizer, rows, columns, max_length):
        words = [list(row[columns["tokens"]]) for row in rows]
        return words, self.encode_words(tokenizer, words, max_length, padding=True, return_tensors="pt")

    @torch.no_grad()
    def predict_rows(self, model, tokenizer, rows: list[dict], columns: dict[str, str], max_length: int) -> list[dict]:
        """Each row plus `predicted_tags`, one per word (words cut off by truncation get "O")."""
        words, encoded = self.model_inputs(tokenizer, rows, columns, max_length)
        logits = model(**encoded.to(model.device)).logits.float().cpu().numpy()
        results = []
        for row_index, row in enumerate(rows):
            per_word = first_token_logits(logits[row_index], encoded.word_ids(row_index), len(words[row_index]))
            tags = [model.config.id2label[int(v.argmax())] if v is not None else "O" for v in per_word]
            results.append({**row, "predicted_tags": tags})
        return results
