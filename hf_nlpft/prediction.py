"""`hf-nlpft predict`: add a fine-tuned model's predictions to every line of a JSONL file.

    hf-nlpft predict --model_name_or_path runs/bbc-classifier --input_file in.jsonl --output_file out.jsonl

Text tasks add `label` and `probabilities`; token tasks add `predicted_tags` (one per input token). The output
file appears complete or not at all, and an existing one is only replaced with --overwrite_output.
"""

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm
from transformers import AutoTokenizer

from .adapters import load_task_config, load_task_model
from .arguments import parse_args
from .data.loading import DataError, check_data_file
from .finetune import FinetuneArguments, requested_columns
from .tasks import TASKS, task_for_model
from .training import UsageError, write_text_atomically
from .weights import check_tokenizer_fits, check_weights, use_safetensors


@dataclass
class PredictArguments:
    model_name_or_path: str = field(default=None, metadata={"help": "A fine-tuned model folder or Hub id."})
    input_file: str = field(default=None, metadata={"help": "JSONL input: one object per line."})
    output_file: str = field(default=None, metadata={"help": "JSONL output: the input lines plus predictions."})
    text_column_name: str | None = field(default=None, metadata={"help": "Text field (text tasks)."})
    overwrite_output: bool = field(default=False, metadata={"help": "Replace an existing --output_file."})
    batch_size: int = field(default=32, metadata={"help": "Lines per forward pass."})
    max_seq_length: int = field(default=512, metadata={"help": "Truncation length in tokens."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow Hub models with custom code."})
    allow_pickle_weights: bool = field(
        default=False,
        metadata={"help": "Load a model whose weights are only a pickle (pytorch_model.bin), which can run code: only for files you trust."},
    )


def read_jsonl(path: str) -> list[tuple[int, dict]]:
    """(line number, object) for every non-blank line."""
    if not path.endswith(".jsonl"):
        raise DataError(f"{path}: --input_file must be a .jsonl file")
    check_data_file(path)  # missing file, bad UTF-8, bad JSON: named with the line
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise DataError(f"{path}, line {line_number}: expected a JSON object, got {type(row).__name__}")
                rows.append((line_number, row))
    if not rows:
        raise DataError(f"{path}: no input lines")
    return rows


def predict_file(args: PredictArguments, finetune_args: FinetuneArguments) -> Path:
    for name in ("model_name_or_path", "input_file", "output_file"):
        if not getattr(args, name):
            raise UsageError(f"--{name} is required")
    output = Path(args.output_file)
    if output.exists() and not args.overwrite_output:
        raise UsageError(f"--output_file {output} exists; pass --overwrite_output to replace it")
    config = load_task_config(args.model_name_or_path, trust_remote_code=args.trust_remote_code)
    check_weights(args.model_name_or_path, args.allow_pickle_weights)  # before the input is read
    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
    check_tokenizer_fits(tokenizer, config, args.model_name_or_path)
    task = TASKS[finetune_args.task or task_for_model(config)]
    numbered = read_jsonl(args.input_file)
    rows = [row for _, row in numbered]
    wanted = requested_columns(args.text_column_name, finetune_args)
    columns = task.resolve_columns(_ColumnView(rows), wanted, require_labels=False)
    for line, row in numbered:  # every line checked before the model loads, named by its line in the file
        missing = [column for column in columns.values() if column not in row]
        problem = f"no {missing[0]!r} field" if missing else task.input_problem(row, columns)
        if problem:
            raise DataError(f"{args.input_file}, line {line}: {problem}")
    model = load_task_model(task.auto_class, args.model_name_or_path, trust_remote_code=args.trust_remote_code,
                            use_safetensors=use_safetensors(args.allow_pickle_weights)).eval()
    results = []
    for start in tqdm(range(0, len(rows), args.batch_size), desc="Predicting", unit="batch"):
        batch = rows[start : start + args.batch_size]
        results += task.predict_rows(model, tokenizer, batch, columns, args.max_seq_length)
    write_text_atomically(output, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in results))
    return output


class _ColumnView:
    """Just enough of a `datasets.Dataset` (its column names) for the tasks' column resolution."""

    def __init__(self, rows: list[dict]):
        self.column_names = list(dict.fromkeys(key for row in rows for key in row))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, finetune_args = parse_args((PredictArguments, FinetuneArguments), argv, prog="hf-nlpft predict")
    output = predict_file(args, finetune_args)
    print(f"Predictions written to {output.resolve()}")
    return 0
