"""Command-line arguments shared by the recipes, in the conventions of Transformers' example scripts.

Every recipe parses its own dataclasses plus `TrainingArguments` with `HfArgumentParser`, so every Trainer
flag works. A YAML or JSON file may stand in for the flags (`hf-nlpft pretrain recipe.yaml`), and flags after
it override the file's values (`hf-nlpft pretrain recipe.yaml --max_steps 10`).
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from transformers import HfArgumentParser


@dataclass
class ModelArguments:
    arch: str | None = field(
        default=None,
        metadata={"help": "Build a new model of this family: rnn or additive (or rnn_seq2seq for seq2seq tasks).",
                  "choices": ["rnn", "additive", "rnn_seq2seq"]},
    )
    config_overrides: str | None = field(
        default=None,
        metadata={"help": "Config fields for --arch, e.g. 'cell=gru,hidden_size=512,num_layers=2,bidirectional=false'"},
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "A saved model folder or Hub id to continue from (instead of --arch)."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer folder or Hub id; default: the model's, or train one on the data."}
    )
    tokenizer_model: str = field(
        default="wordpiece",
        metadata={"help": "Kind of tokenizer to train when none is given.",
                  "choices": ["wordpiece", "bpe", "unigram", "char"]},
    )
    tokenizer_vocab_size: int = field(default=8000, metadata={"help": "Vocabulary size of a trained tokenizer."})
    lowercase: bool = field(default=False, metadata={"help": "Lowercase text in a trained tokenizer."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow Hub models with custom code."})
    allow_pickle_weights: bool = field(
        default=False,
        metadata={"help": "Load a model whose weights are only a pickle (pytorch_model.bin), which can run code: only for files you trust."},
    )


@dataclass
class DataArguments:
    dataset_name: str | None = field(
        default=None, metadata={"help": "A built-in corpus (see `hf-nlpft corpora`), else a Hub dataset id."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of a Hub dataset."})
    train_file: str | None = field(default=None, metadata={"help": "Training data: .txt, .jsonl, .csv or .parquet"})
    validation_file: str | None = field(default=None, metadata={"help": "Validation data, same formats."})
    text_column_name: str | None = field(
        default=None, metadata={"help": "Column holding the text; default: 'text' or the only string column."}
    )
    validation_split_percentage: int = field(
        default=5, metadata={"help": "Share of train held out for validation when there is no validation split."}
    )
    block_size: int = field(default=128, metadata={"help": "Tokens per training block for LM objectives."})
    max_seq_length: int = field(default=128, metadata={"help": "Truncation length in tokens (contrastive, fine-tuning)."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for datasets.map."})
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute cached tokenized datasets."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only the first N train examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only the first N eval examples."})


@dataclass
class OutputArguments:
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Allow writing into an existing, non-empty --output_dir."}
    )


def _file_to_argv(path: str) -> list[str]:
    """Turn a YAML/JSON file of arguments into flags, so that later flags can override it."""
    text = Path(path).read_text(encoding="utf-8")
    values = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of argument names to values, got {type(values).__name__}")
    argv = []
    for key, value in values.items():
        if value is None:
            continue
        argv.append(f"--{key}")
        if isinstance(value, list):
            argv.extend(str(item) for item in value)
        elif isinstance(value, bool):
            argv.append(str(value).lower())
        elif isinstance(value, dict):
            argv.append(json.dumps(value))
        else:
            argv.append(str(value))
    return argv


def parse_args(dataclass_types: tuple, argv: list[str], prog: str | None = None) -> tuple:
    """Parse flags (or a leading .yaml/.yml/.json recipe plus overriding flags) into the dataclasses.

    Unknown flags are an error (argparse exits with status 2 and names them).
    """
    if argv and argv[0].endswith((".yaml", ".yml", ".json")) and not argv[0].startswith("-"):
        if not Path(argv[0]).is_file():
            raise FileNotFoundError(f"Recipe file not found: {argv[0]}")
        argv = _file_to_argv(argv[0]) + list(argv[1:])
    parser = HfArgumentParser(dataclass_types, prog=prog)
    *parsed, unknown = parser.parse_args_into_dataclasses(
        args=argv, look_for_args_file=False, return_remaining_strings=True
    )
    if unknown:  # HfArgumentParser would raise a ValueError with a traceback; argparse's own error exits with 2
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    for name in ("max_train_samples", "max_eval_samples"):  # 0 would mean an empty split, found only after training
        for values in parsed:
            value = getattr(values, name, None)
            if value is not None and value < 1:
                parser.error(f"argument --{name}: must be at least 1, got {value}")
    return tuple(parsed)
