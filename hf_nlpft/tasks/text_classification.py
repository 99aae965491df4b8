"""Text classification (topics, sentiment): one label per text, from a `*ForSequenceClassification` head."""

from collections.abc import Iterator
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding

from ..data.loading import DataError, resolve_column
from ..metrics import classification_metrics, load_metric, make_classification_compute_metrics
from ..plots import plot_confusion_matrix, plot_roc_curves
from ..training import save_json

TEXT_COLUMNS = ("text", "sentence", "review", "content", "document")
LABEL_COLUMNS = ("label", "labels")


def label_names_of(raw: datasets.DatasetDict, column: str, sequence: bool = False) -> list[str]:
    """Label names from a ClassLabel feature, else the sorted distinct values of train.

    Labels in validation/test that train never shows are an error: the model could never predict them.
    """
    feature = raw["train"].features[column]
    inner = feature.feature if sequence and hasattr(feature, "feature") else feature
    if isinstance(inner, datasets.ClassLabel):
        return list(inner.names)

    def values(split: str) -> set:
        column_values = raw[split][column]
        return {v for row in column_values for v in row} if sequence else set(column_values)

    train_values = values("train")
    if None in train_values:
        raise DataError(f"Column {column!r} has empty labels in the train split")
    for split in raw:
        if split == "train":
            continue
        unseen = values(split) - train_values
        if unseen:
            raise DataError(
                f"The {split} split has labels that train never shows in column {column!r}: {sorted(map(str, unseen))}"
            )
    return [str(value) for value in sorted(train_values)]


def label_ids(values: list, names: list[str], feature) -> list[int]:
    """Map raw label values (ClassLabel ints, strings or ints) to ids in `names`."""
    if isinstance(feature, datasets.ClassLabel):
        return list(values)
    index = {name: i for i, name in enumerate(names)}
    return [index[str(value)] for value in values]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(-1, keepdims=True)


class TextClassificationTask:
    name = "text-classification"
    auto_class = AutoModelForSequenceClassification
    pipeline_tag = "text-classification"
    main_metric = "f1_macro"
    model_overrides: dict = {}
    generative = False  # scored on logits, not on generated text

    def resolve_columns(self, dataset: datasets.Dataset, wanted: dict, require_labels: bool = True) -> dict[str, str]:
        columns = {"text": resolve_column(dataset, wanted.get("text"), TEXT_COLUMNS, "text")}
        if require_labels:
            columns["label"] = resolve_column(dataset, wanted.get("label"), LABEL_COLUMNS, "label")
        return columns

    def label_names(self, raw: datasets.DatasetDict, columns: dict[str, str]) -> list[str]:
        return label_names_of(raw, columns["label"])

    def texts(self, dataset: datasets.Dataset, columns: dict[str, str]) -> Iterator[str]:
        return (text for text in dataset[columns["text"]] if text)

    def preprocess(self, raw, tokenizer, label_names, columns, args, main_process_first):
        feature = raw["train"].features[columns["label"]]

        def encode(batch):
            texts = [text if text is not None else "" for text in batch[columns["text"]]]
            encoded = tokenizer(texts, truncation=True, max_length=args.max_seq_length)
            if columns["label"] in batch:
                encoded["labels"] = label_ids(batch[columns["label"]], label_names, feature)
            return encoded

        with main_process_first(desc="tokenize"):
            return raw.map(
                encode,
                batched=True,
                remove_columns=raw["train"].column_names,
                try_original_type=False,  # else a label column named "labels" keeps its strings over the ids
                num_proc=args.preprocessing_num_workers,
                desc="Tokenizing",
            )

    def collator(self, tokenizer, model=None):
        return DataCollatorWithPadding(tokenizer)

    def compute_metrics(self, label_names: list[str], tokenizer=None):
        return make_classification_compute_metrics(label_names)

    def write_reports(self, prediction_output, label_names: list[str], output_dir: Path, **context) -> list[str]:
        """classification_report.json, confusion_matrix.png and roc_curve.png for a prediction run."""
        logits = prediction_output.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        labels = prediction_output.label_ids
        probabilities = softmax(logits)
        predictions = probabilities.argmax(-1)
        per_class = load_metric("precision_recall_f1").compute(
            predictions=predictions, references=labels, label_names=label_names
        )["per_class"]
        report = {**classification_metrics(logits, labels, label_names), "per_class": per_class}
        save_json(output_dir / "classification_report.json", report)
        plot_confusion_matrix(labels, predictions, label_names, output_dir / "confusion_matrix.png")
        plots = ["confusion_matrix.png"]
        if plot_roc_curves(labels, probabilities, label_names, output_dir / "roc_curve.png"):
            plots.append("roc_curve.png")
        return plots

    def input_problem(self, row: dict, columns: dict[str, str]) -> str | None:
        """Why `row` (a line of `hf-nlpft predict` input) cannot be predicted on; None when it can."""
        text = row[columns["text"]]
        return None if isinstance(text, str) else f"{columns['text']!r} must be a string, got {type(text).__name__}"

    @torch.no_grad()
    def predict_rows(self, model, tokenizer, rows: list[dict], columns: dict[str, str], max_length: int) -> list[dict]:
        """Each row plus `label` (the predicted name) and `probabilities` ({label: p})."""
        texts = [row[columns["text"]] for row in rows]
        encoded = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        probabilities = model(**encoded.to(model.device)).logits.float().softmax(-1).cpu()
        names = [model.config.id2label[i] for i in range(probabilities.shape[-1])]
        results = []
        for row, row_probabilities in zip(rows, probabilities.tolist()):
            best = max(range(len(names)), key=row_probabilities.__getitem__)
            results.append({**row, "label": names[best], "probabilities": dict(zip(names, row_probabilities))})
        return results
