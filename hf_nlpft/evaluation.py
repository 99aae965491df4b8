"""`hf-nlpft evaluate`: score a fine-tuned model folder on a labelled split; print the metrics as JSON and save them.

    hf-nlpft evaluate --model_name_or_path runs/bbc-classifier --dataset_name bbc_news --split test
"""

import contextlib
import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from transformers import AutoTokenizer, Seq2SeqTrainer, Seq2SeqTrainingArguments, Trainer

from .adapters import load_task_config, load_task_model
from .arguments import DataArguments, parse_args
from .data.loading import DataError, take_subset
from .finetune import FinetuneArguments, load_task_data, requested_columns
from .tasks import TASKS, task_for_model
from .training import UsageError, save_json
from .weights import check_tokenizer_fits, check_weights, use_safetensors


@dataclass
class EvaluateArguments:
    model_name_or_path: str = field(default=None, metadata={"help": "A fine-tuned model folder or Hub id."})
    split: str = field(default="test", metadata={"help": "Split to score: train, validation or test."})
    output_file: str | None = field(
        default=None, metadata={"help": "Where to write the metrics; default <model>/evaluation_<split>_results.json"}
    )
    per_device_eval_batch_size: int = field(default=32, metadata={"help": "Batch size."})
    seed: int = field(
        default=42, metadata={"help": "Seed of the --max_eval_samples subset (finetune's default: the same examples)."}
    )
    num_beams: int = field(default=1, metadata={"help": "Beam width when the task generates text (seq2seq)."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow Hub models with custom code."})
    allow_pickle_weights: bool = field(
        default=False,
        metadata={"help": "Load a model whose weights are only a pickle (pytorch_model.bin), which can run code: only for files you trust."},
    )


def evaluate_model(eval_args: EvaluateArguments, data_args: DataArguments, finetune_args: FinetuneArguments) -> dict:
    if not eval_args.model_name_or_path:
        raise UsageError("--model_name_or_path is required")
    config = load_task_config(eval_args.model_name_or_path, trust_remote_code=eval_args.trust_remote_code)
    check_weights(eval_args.model_name_or_path, eval_args.allow_pickle_weights)  # before any data is read
    tokenizer = AutoTokenizer.from_pretrained(eval_args.model_name_or_path)
    check_tokenizer_fits(tokenizer, config, eval_args.model_name_or_path)
    task_name = finetune_args.task or task_for_model(config)
    task = TASKS[task_name]
    raw = load_task_data(task_name, data_args, finetune_args)
    if eval_args.split not in raw:
        raise DataError(f"The data has no {eval_args.split!r} split; it has {list(raw)}")
    dataset = take_subset(raw[eval_args.split], data_args.max_eval_samples, eval_args.seed)
    columns = task.resolve_columns(dataset, requested_columns(data_args.text_column_name, finetune_args))
    label_names = [] if task.generative else [config.id2label[i] for i in range(config.num_labels)]
    # The model's labels, not the data's: every label in the data must be one the model knows.
    seen = task.label_names(datasets.DatasetDict({"train": dataset}), columns)
    unknown = sorted(set(seen) - set(label_names))
    if unknown:
        raise DataError(f"The {eval_args.split} split has labels the model was not trained on: {unknown}")
    model = load_task_model(task.auto_class, eval_args.model_name_or_path, trust_remote_code=eval_args.trust_remote_code,
                            use_safetensors=use_safetensors(eval_args.allow_pickle_weights))
    single_process = lambda desc="": contextlib.nullcontext()  # noqa: E731 - no other process to wait for
    processed = task.preprocess(
        datasets.DatasetDict({"train": dataset}), tokenizer, label_names, columns, data_args, single_process
    )["train"]
    with tempfile.TemporaryDirectory() as scratch:
        args = Seq2SeqTrainingArguments(
            output_dir=scratch, per_device_eval_batch_size=eval_args.per_device_eval_batch_size, report_to="none",
            predict_with_generate=task.generative, generation_max_length=getattr(task, "generation_max_length", None),
            generation_num_beams=eval_args.num_beams,
        )
        trainer = (Seq2SeqTrainer if task.generative else Trainer)(
            model=model,
            args=args,
            processing_class=tokenizer,
            data_collator=task.collator(tokenizer, model),
            compute_metrics=task.compute_metrics(label_names, tokenizer),
        )
        metrics = trainer.evaluate(processed, metric_key_prefix=eval_args.split)
    # Scores only: not timings, nor the `epoch` 0 of the fresh Trainer that ran the evaluation.
    timing = ("runtime", "per_second", "preparation_time")
    return {k: v for k, v in metrics.items() if k != "epoch" and not any(word in k for word in timing)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    eval_args, data_args, finetune_args = parse_args(
        (EvaluateArguments, DataArguments, FinetuneArguments), argv, prog="hf-nlpft evaluate"
    )
    metrics = evaluate_model(eval_args, data_args, finetune_args)
    output_file = Path(eval_args.output_file or Path(eval_args.model_name_or_path) / f"evaluation_{eval_args.split}_results.json")
    save_json(output_file, metrics)
    print(json.dumps(metrics, indent=2, sort_keys=True))
    print(f"Metrics written to {output_file}", file=sys.stderr)
    return 0
