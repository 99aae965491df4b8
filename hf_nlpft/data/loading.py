"""Raw datasets from a built-in corpus, local files or the Hub, checked early with errors that name the problem."""

import csv
import json
import math
from pathlib import Path

import datasets

from .corpora import list_corpora, load_corpus

FILE_BUILDERS = {".txt": "text", ".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
TEXT_COLUMN_CANDIDATES = ("text", "sentence", "review", "content", "document")


class DataError(ValueError):
    """Bad input data: the message names the file, line or column at fault."""


def json_kind(value) -> str | None:
    """The JSON type of a field value, in words (None for null: a missing value, compatible with any type)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "a string", list: "a list", dict: "an object"}[type(value)]


def check_data_file(path: str, field_types: bool = False) -> str:
    """Validate one data file before `datasets` reads it; return the `datasets` builder name for it.

    JSONL: every line a JSON object; with `field_types`, each field also keeps one JSON type from line to line
    (`datasets` would otherwise fail deep inside pyarrow, or sort strings against numbers). CSV: no row has more
    fields than the header.
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(f"Data file not found: {path}")
    builder = FILE_BUILDERS.get(file.suffix.lower())
    if builder is None:
        raise DataError(f"{path}: unsupported file type {file.suffix!r}; use one of {sorted(FILE_BUILDERS)}")
    if builder == "parquet":
        return builder
    if file.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")
    is_jsonl = file.suffix.lower() == ".jsonl"
    filled_lines = 0
    first_seen: dict[str, tuple[str, int]] = {}  # field -> (JSON type, line it was first seen with it)
    with file.open("rb") as handle:
        for line_number, raw_line in enumerate(handle, start=1):
            try:
                line = raw_line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}, line {line_number}: not valid UTF-8 (byte {err.start} of the line); "
                    "re-encode the file as UTF-8"
                ) from None
            filled_lines += bool(line.strip())
            if is_jsonl and line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}, line {line_number}: not valid JSON ({err.msg})") from None
                if not isinstance(row, dict):
                    raise DataError(f"{path}, line {line_number}: expected a JSON object, got {type(row).__name__}")
                for key, value in row.items() if field_types else ():
                    kind = json_kind(value)
                    seen = first_seen.setdefault(key, (kind, line_number)) if kind else None
                    if seen and seen[0] != kind:
                        raise DataError(
                            f"{path}, line {line_number}: field {key!r} is {kind} here but {seen[0]} on line {seen[1]}"
                        )
    # `datasets` fails on a split without rows with an error that names neither file nor cause.
    if builder == "csv" and filled_lines < 2:
        raise DataError(f"{path}: no examples (a CSV file needs a header line and at least one row)")
    if is_jsonl and not filled_lines:
        raise DataError(f"{path}: no examples (only blank lines)")
    if builder == "csv":
        check_csv_rows(file)
    return builder


def check_csv_rows(file: Path) -> None:
    """A row with more fields than the header (an unquoted comma, usually) fails deep inside pandas: name it."""
    limit = csv.field_size_limit(2**31 - 1)  # pandas takes fields of any length; so must this check
    try:
        with file.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            for row in reader:
                if len(row) > len(header):
                    raise DataError(
                        f"{file}, line {reader.line_num}: {len(row)} fields but the header has {len(header)}; "
                        "quote fields that contain commas"
                    )
    except csv.Error as err:
        raise DataError(f"{file}, line {reader.line_num}: not valid CSV ({err})") from None
    finally:
        csv.field_size_limit(limit)


def load_raw_datasets(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    data_files: dict[str, str] | None = None,
    cache_dir: str | None = None,
) -> datasets.DatasetDict:
    """A built-in corpus by name (resolved first), local files by split, or else a Hub dataset id."""
    data_files = {split: path for split, path in (data_files or {}).items() if path}
    if dataset_name and data_files:
        raise DataError("Give either --dataset_name or data files (--train_file, ...), not both")
    if dataset_name:
        if dataset_name in list_corpora():
            return load_corpus(dataset_name)
        return datasets.load_dataset(dataset_name, dataset_config_name, cache_dir=cache_dir)
    if not data_files:
        raise DataError("No data: give --dataset_name or --train_file")
    builders = {check_data_file(path, field_types=True) for path in data_files.values()}
    if len(builders) > 1:
        raise DataError(f"All data files must have the same format; got {sorted(data_files.values())}")
    try:
        raw = datasets.load_dataset(builders.pop(), data_files=data_files, cache_dir=cache_dir)
    except datasets.exceptions.DatasetGenerationError as err:  # what the checks above did not foresee
        cause = err
        while cause.__cause__ is not None or cause.__context__ is not None:
            cause = cause.__cause__ or cause.__context__
        raise DataError(f"Could not read {', '.join(data_files.values())}: {cause}") from None
    for split, dataset in raw.items():
        if len(dataset) == 0:
            raise DataError(f"{data_files[split]}: the {split} split has no examples")
    return raw


def resolve_column(dataset: datasets.Dataset, wanted: str | None, candidates: tuple[str, ...], role: str) -> str:
    """The column to use for `role`: the one asked for, else the first usual name present."""
    columns = dataset.column_names
    if wanted is not None:
        if wanted not in columns:
            raise DataError(f"Column {wanted!r} ({role}) not found; the data has columns {columns}")
        return wanted
    for name in candidates:
        if name in columns:
            return name
    raise DataError(f"No {role} column found among {columns}; name it with the matching --*_column_name flag")


def split_off_validation(raw: datasets.DatasetDict, percentage: int, seed: int) -> datasets.DatasetDict:
    """Hold out `percentage`% of train as validation when the data has no validation split."""
    if "validation" in raw:
        return raw
    if not 0 < percentage < 100:
        raise DataError("No validation split: give --validation_file or a --validation_split_percentage in 1..99")
    held_out = math.ceil(len(raw["train"]) * percentage / 100)  # as train_test_split rounds
    if held_out >= len(raw["train"]):
        raise DataError(
            f"The train split has {len(raw['train'])} example(s): too few to hold out {percentage}% for validation "
            "and keep some for training; give a --validation_file"
        )
    parts = raw["train"].train_test_split(test_size=percentage / 100, seed=seed)
    return datasets.DatasetDict({**raw, "train": parts["train"], "validation": parts["test"]})


def take_subset(dataset: datasets.Dataset, size: int | None, seed: int) -> datasets.Dataset:
    """A seeded random `size` examples (all when None or larger): corpora in canonical order are sorted by label,
    so the first N would often hold a single class."""
    if size is None or size >= len(dataset):
        return dataset
    return dataset.shuffle(seed=seed).select(range(size))
