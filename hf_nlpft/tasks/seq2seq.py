"""Sequence to sequence (machine translation, semantic parsing): generate a target text from a source text.

Trained with `Seq2SeqTrainer` and scored on generated outputs (`predict_with_generate`): BLEU and chrF
(sacreBLEU), exact match and token accuracy. One tokenizer serves both sides (a shared vocabulary).
"""

from collections.abc import Iterator
from pathlib import Path

import datasets
import numpy as np
import torch
from transformers import AutoModelForSeq2SeqLM, DataCollatorForSeq2Seq, EvalPrediction

from ..data.loading import DataError, resolve_column
from ..metrics import IGNORE_INDEX, load_metric
from ..plots import plot_attention_alignment
from ..training import save_json

SOURCE_COLUMNS = ("source", "src", "question", "comment", "en")
TARGET_COLUMNS = ("target", "tgt", "query", "command", "sql", "es")


class Seq2SeqTask:
    name = "seq2seq"
    auto_class = AutoModelForSeq2SeqLM
    pipeline_tag = "text2text-generation"
    main_metric = "bleu"
    model_overrides: dict = {}
    generative = True  # scored on generated text (predict_with_generate)
    generation_max_length = 128

    def resolve_columns(self, dataset: datasets.Dataset, wanted: dict, require_labels: bool = True) -> dict[str, str]:
        columns = {"source": resolve_column(dataset, wanted.get("source"), SOURCE_COLUMNS, "source")}
        if require_labels:
            columns["target"] = resolve_column(dataset, wanted.get("target"), TARGET_COLUMNS, "target")
        return columns

    def label_names(self, raw: datasets.DatasetDict, columns: dict[str, str]) -> list[str]:
        """No label set; checks instead that no source or target is empty (named by split and row)."""
        for split in raw:
            for column in columns.values():
                for index, text in enumerate(raw[split][column]):
                    if not isinstance(text, str) or not text.strip():
                        raise DataError(f"{split} split, example {index} (0-based row of the file): empty {column!r}")
        return []

    def texts(self, dataset: datasets.Dataset, columns: dict[str, str]) -> Iterator[str]:
        for column in columns.values():
            yield from dataset[column]

    def preprocess(self, raw, tokenizer, label_names, columns, args, main_process_first):
        def encode(batch):
            encoded = tokenizer(batch[columns["source"]], truncation=True, max_length=args.max_seq_length)
            if columns.get("target") in batch:
                targets = tokenizer(text_target=batch[columns["target"]], truncation=True, max_length=args.max_seq_length)
                encoded["labels"] = targets["input_ids"]
            return encoded

        with main_process_first(desc="tokenize"):
            return raw.map(
                encode,
                batched=True,
                remove_columns=raw["train"].column_names,
                num_proc=args.preprocessing_num_workers,
                desc="Tokenizing sources and targets",
            )

    def collator(self, tokenizer, model=None):
        return DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=IGNORE_INDEX)

    def compute_metrics(self, label_names: list[str], tokenizer=None):
        def compute(prediction: EvalPrediction) -> dict[str, float]:
            predictions, references = self.decode(prediction, tokenizer)
            return self.metrics(predictions, references)

        return compute

    @staticmethod
    def decode(prediction, tokenizer) -> tuple[list[str], list[str]]:
        generated = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        labels = np.where(prediction.label_ids == IGNORE_INDEX, tokenizer.pad_token_id, prediction.label_ids)
        generated = np.where(generated < 0, tokenizer.pad_token_id, generated)
        decode = lambda ids: [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]  # noqa: E731
        return decode(generated), decode(labels)

    def metrics(self, predictions: list[str], references: list[str]) -> dict[str, float]:
        scores = load_metric("bleu_chrf").compute(predictions=predictions, references=references)
        matches = load_metric("exact_match").compute(predictions=predictions, references=references)
        return {
            "bleu": scores["bleu"],
            "chrf": scores["chrf"],
            "exact_match": matches["exact_match"],
            "token_accuracy": matches["token_accuracy"],
        }

    def write_reports(self, prediction_output, label_names, output_dir: Path, *, model=None, tokenizer=None,
                      raw_test=None, columns=None) -> list[str]:
        """Generated test outputs beside their references, and an attention alignment plot of a few examples."""
        predictions, references = self.decode(prediction_output, tokenizer)
        save_json(output_dir / "test_generations.json", {
            "examples": [{"prediction": p, "reference": r} for p, r in zip(predictions[:200], references[:200])],
        })
        if model is None or raw_test is None:
            return []
        sources = list(raw_test[columns["source"]][:3])
        path = self.plot_alignments(model, tokenizer, sources, output_dir / "attention_alignment.png")
        return [path.name] if path else []

    @torch.no_grad()
    def plot_alignments(self, model, tokenizer, sources: list[str], path: Path) -> Path | None:
        model.eval()
        panels = []
        for source in sources:
            encoded = tokenizer(source, return_tensors="pt", truncation=True, max_length=48).to(model.device)
            # max_length (not max_new_tokens, which clashes with a saved max_length): the start token + 40 steps
            out = model.generate(**encoded, max_length=41, num_beams=1, do_sample=False,
                                 output_attentions=True, return_dict_in_generate=True)
            steps = [step[0][0, 0, -1].float().cpu().numpy() for step in out.cross_attentions]  # one row per step
            if not steps:
                continue
            generated = out.sequences[0, -len(steps):].tolist()
            panels.append((
                tokenizer.convert_ids_to_tokens(encoded["input_ids"][0].tolist()),
                tokenizer.convert_ids_to_tokens(generated),
                np.stack(steps),
            ))
        return plot_attention_alignment(panels, path) if panels else None

    @torch.no_grad()
    def predict_rows(self, model, tokenizer, rows: list[dict], columns: dict[str, str], max_length: int,
                     num_beams: int = 4) -> list[dict]:
        sources = [row[columns["source"]] for row in rows]
        encoded = tokenizer(sources, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        generated = model.generate(**encoded.to(model.device), num_beams=num_beams, max_length=self.generation_max_length)
        texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
        return [{**row, "prediction": text.strip()} for row, text in zip(rows, texts)]

    def input_problem(self, row: dict, columns: dict[str, str]) -> str | None:
        source = row.get(columns["source"])
        if not isinstance(source, str) or not source.strip():
            return f"{columns['source']!r} must be a non-empty string"
        return None


class TranslationTask(Seq2SeqTask):
    name = "translation"
    pipeline_tag = "translation"
    main_metric = "bleu"


class SemanticParsingTask(Seq2SeqTask):
    name = "semantic-parsing"
    pipeline_tag = "text2text-generation"
    main_metric = "exact_match"
