"""Evaluation metrics as `evaluate` modules shipped inside the package, plus `Trainer(compute_metrics=...)` glue.

Each metric is a folder `hf_nlpft/metrics/<name>/` holding `<name>.py`, an `evaluate.Metric` subclass, so it loads
by path with no Hub access: `evaluate.load(str(METRICS_DIR / "accuracy"))`, or `load_metric("accuracy")`.

Metrics: accuracy, precision_recall_f1 (micro/macro/weighted and per class), roc_auc (binary and one-vs-rest),
seqeval (entity-level, BIO tags), bleu_chrf (sacreBLEU corpus BLEU and chrF), exact_match (+ token accuracy).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import evaluate
import numpy as np

METRICS_DIR = Path(__file__).resolve().parent

IGNORE_INDEX = -100  # label of positions a loss and metric skip (special tokens, continuation sub-words, padding)


def available_metrics() -> list[str]:
    """Names of the metric modules in `METRICS_DIR` (folders holding a script of the same name)."""
    return sorted(
        child.name for child in METRICS_DIR.iterdir() if child.is_dir() and (child / f"{child.name}.py").is_file()
    )


def load_metric(name: str, **kwargs: Any) -> evaluate.EvaluationModule:
    """Load the metric module `name` from `METRICS_DIR` by path (works offline); `kwargs` go to `evaluate.load`.

    Raises ValueError for a name that is not one of `available_metrics()`.
    """
    names = available_metrics()
    if name not in names:
        raise ValueError(f"Unknown metric {name!r}; available metrics: {', '.join(names)}")
    return evaluate.load(str(METRICS_DIR / name), **kwargs)


@functools.cache
def _cached_metric(name: str) -> evaluate.EvaluationModule:
    # One in-memory instance per metric for the glue below: nothing written under the metrics cache, no file locks,
    # and no reload per evaluation. An instance is reusable: `compute` empties it.
    return load_metric(name, keep_in_memory=True)


def _softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def classification_metrics(logits: np.ndarray, labels: np.ndarray, label_names: Sequence[str]) -> dict[str, float]:
    """Metrics of single-label classification from logits `(n, num_labels)` and integer labels `(n,)`.

    Returns accuracy, precision_macro, recall_macro, f1_macro, f1_micro, f1_weighted and roc_auc (binary: the
    positive class's softmax probability; more classes: one-vs-rest macro over softmax rows). roc_auc is NaN, with
    a RuntimeWarning, when a class never occurs in `labels` (AUC is undefined then).
    """
    logits = np.asarray(logits)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (examples, classes), got shape {logits.shape}")
    if logits.shape[1] != len(label_names) or len(label_names) < 2:
        raise ValueError(
            f"logits have {logits.shape[1]} columns but there are {len(label_names)} label names (need >= 2, equal)"
        )
    if logits.shape[0] != labels.shape[0]:
        raise ValueError(f"{logits.shape[0]} rows of logits but {labels.shape[0]} labels")
    predictions = logits.argmax(axis=-1)
    probabilities = _softmax(logits)
    prf = _cached_metric("precision_recall_f1").compute(
        predictions=predictions, references=labels, label_names=list(label_names)
    )
    scores = probabilities[:, 1] if len(label_names) == 2 else probabilities
    roc = _cached_metric("roc_auc").compute(prediction_scores=scores, references=labels, undefined="nan")
    return {
        "accuracy": _cached_metric("accuracy").compute(predictions=predictions, references=labels)["accuracy"],
        "precision_macro": prf["precision_macro"],
        "recall_macro": prf["recall_macro"],
        "f1_macro": prf["f1_macro"],
        "f1_micro": prf["f1_micro"],
        "f1_weighted": prf["f1_weighted"],
        "roc_auc": roc["roc_auc"],
    }


def _predictions_and_labels(eval_prediction: Any) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, label_ids) of a `transformers.EvalPrediction` or a `(predictions, label_ids)` pair; when a
    model returns several outputs, predictions is a tuple whose first element holds the logits."""
    if hasattr(eval_prediction, "predictions"):
        predictions, labels = eval_prediction.predictions, eval_prediction.label_ids
    else:
        predictions, labels = eval_prediction[0], eval_prediction[1]
    if isinstance(predictions, (tuple, list)):
        predictions = predictions[0]
    if isinstance(labels, (tuple, list)):
        labels = labels[0]
    if labels is None:
        raise ValueError("the evaluation set has no labels; metrics need them (label_names / a `labels` column)")
    return np.asarray(predictions), np.asarray(labels)


def make_classification_compute_metrics(label_names: Sequence[str]) -> Callable[[Any], dict[str, float]]:
    """A `Trainer(compute_metrics=...)` function computing `classification_metrics` from an `EvalPrediction`."""
    label_names = list(label_names)

    def compute_metrics(eval_prediction: Any) -> dict[str, float]:
        logits, labels = _predictions_and_labels(eval_prediction)
        return classification_metrics(logits, labels, label_names)

    return compute_metrics


def token_classification_metrics(
    logits: np.ndarray,
    labels: np.ndarray,
    label_names: Sequence[str],
    *,
    mode: str | None = None,
    scheme: str | None = None,
) -> dict[str, float]:
    """Entity-level seqeval precision/recall/f1 and token accuracy from logits `(batch, seq, num_labels)` (or
    already-argmaxed ids `(batch, seq)`) and labels `(batch, seq)`; positions labelled -100 are skipped.

    `label_names[i]` is the tag of id `i` (e.g. "B-PER"). `mode="strict"` (with `scheme`, IOB2 by default) only
    credits well-formed entities. For tag sets that are not BIO (e.g. POS tags), only `accuracy` is meaningful.
    """
    logits, labels = np.asarray(logits), np.asarray(labels)
    predictions = logits.argmax(axis=-1) if logits.ndim == labels.ndim + 1 else logits
    if predictions.shape != labels.shape or labels.ndim != 2:
        raise ValueError(
            f"expected logits (batch, seq, labels) and labels (batch, seq); got {logits.shape} and {labels.shape}"
        )
    names = list(label_names)
    predicted_tags, reference_tags = [], []
    for predicted_row, label_row in zip(predictions, labels):
        keep = label_row != IGNORE_INDEX
        if not keep.any():
            continue
        predicted_tags.append([names[i] for i in predicted_row[keep]])
        reference_tags.append([names[i] for i in label_row[keep]])
    if not reference_tags:
        raise ValueError(f"every label is {IGNORE_INDEX}: no position to score")
    result = _cached_metric("seqeval").compute(
        predictions=predicted_tags, references=reference_tags, mode=mode, scheme=scheme
    )
    return {key: result[key] for key in ("precision", "recall", "f1", "accuracy")}


def make_token_classification_compute_metrics(
    label_names: Sequence[str], *, mode: str | None = None, scheme: str | None = None
) -> Callable[[Any], dict[str, float]]:
    """A `Trainer(compute_metrics=...)` function computing `token_classification_metrics` from an `EvalPrediction`."""
    label_names = list(label_names)

    def compute_metrics(eval_prediction: Any) -> dict[str, float]:
        logits, labels = _predictions_and_labels(eval_prediction)
        return token_classification_metrics(logits, labels, label_names, mode=mode, scheme=scheme)

    return compute_metrics


__all__ = [
    "IGNORE_INDEX",
    "METRICS_DIR",
    "available_metrics",
    "classification_metrics",
    "load_metric",
    "make_classification_compute_metrics",
    "make_token_classification_compute_metrics",
    "token_classification_metrics",
]
