"""Semantic role labelling as predicate-aware tagging: BIO argument tags for one predicate per example.

The model sees which word is the predicate through `predicate_indicator` (a learned embedding added to the
token embeddings, `use_predicate_indicator=True`). Scores are span-level P/R/F1 over the arguments; the
predicate's own `V` span is excluded, as in the CoNLL-2005 evaluation.
"""

import datasets
import numpy as np
import torch
from transformers import DataCollatorForTokenClassification

from ..data.loading import DataError, resolve_column
from ..metrics import token_classification_metrics
from .token_classification import TokenClassificationTask, check_lengths

PREDICATE_COLUMNS = ("predicate_index", "predicate")


class SrlCollator(DataCollatorForTokenClassification):
    """Pads `predicate_indicator` with 0 beside the labels' -100."""

    def torch_call(self, features):
        indicators = [feature.pop("predicate_indicator") for feature in features]
        batch = super().torch_call(features)
        length = batch["input_ids"].shape[1]
        padded = [list(row) + [0] * (length - len(row)) for row in indicators]
        if self.tokenizer.padding_side == "left":
            padded = [[0] * (length - len(row)) + list(row) for row in indicators]
        batch["predicate_indicator"] = torch.tensor(padded, dtype=torch.long)
        return batch


def drop_verb_tags(tags: list[str]) -> list[str]:
    return ["O" if tag.endswith("-V") else tag for tag in tags]


class SrlTask(TokenClassificationTask):
    name = "srl"
    pipeline_tag = "token-classification"
    main_metric = "f1"
    model_overrides = {"use_predicate_indicator": True}

    def resolve_columns(self, dataset: datasets.Dataset, wanted: dict, require_labels: bool = True) -> dict[str, str]:
        columns = super().resolve_columns(dataset, wanted, require_labels)
        columns["predicate"] = resolve_column(dataset, wanted.get("predicate"), PREDICATE_COLUMNS, "predicate index")
        return columns

    def label_names(self, raw: datasets.DatasetDict, columns: dict[str, str]) -> list[str]:
        for split in raw:
            check_lengths(raw[split], split, columns["tokens"], columns["tags"])
            for index, (tokens, predicate) in enumerate(zip(raw[split][columns["tokens"]], raw[split][columns["predicate"]])):
                if not isinstance(predicate, int) or not 0 <= predicate < len(tokens):
                    raise DataError(
                        f"{split} split, example {index}: predicate index {predicate} is out of range for "
                        f"{len(tokens)} tokens"
                    )
        return super().label_names(raw, columns)

    def add_inputs(self, encoded, batch, columns) -> None:
        encoded["predicate_indicator"] = [
            [int(word_id is not None and word_id == predicate) for word_id in encoded.word_ids(row)]
            for row, predicate in enumerate(batch[columns["predicate"]])
        ]

    def collator(self, tokenizer, model=None):
        return SrlCollator(tokenizer)

    def metrics(self, logits: np.ndarray, labels: np.ndarray, label_names: list[str]) -> dict:
        return token_classification_metrics(logits, labels, drop_verb_tags(label_names))

    def input_problem(self, row: dict, columns: dict[str, str]) -> str | None:
        problem = super().input_problem(row, columns)
        if problem:
            return problem
        predicate, tokens = row[columns["predicate"]], row[columns["tokens"]]
        if isinstance(predicate, bool) or not isinstance(predicate, int):
            return f"{columns['predicate']!r} must be an integer, got {predicate!r}"
        if not 0 <= predicate < len(tokens):
            return f"predicate index {predicate} is out of range for {len(tokens)} tokens (valid: 0..{len(tokens) - 1})"
        return None

    def model_inputs(self, tokenizer, rows, columns, max_length):
        words, encoded = super().model_inputs(tokenizer, rows, columns, max_length)
        indicators = []
        for row_index, row in enumerate(rows):
            predicate = row[columns["predicate"]]
            if not 0 <= predicate < len(words[row_index]):
                raise DataError(f"input row {row_index}: predicate index {predicate} is out of range")
            indicators.append([int(w == predicate) for w in encoded.word_ids(row_index)])
        encoded["predicate_indicator"] = torch.tensor(indicators, dtype=torch.long)
        return words, encoded
