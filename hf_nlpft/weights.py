"""Loading model weights safely: safetensors only, unless the user opts in to pickles; damaged files named.

Everything this package saves is safetensors (`model.safetensors`, `adapter_model.safetensors`); the one pickle in
a run folder is the Trainer's `training_args.bin` (its TrainingArguments, never read back by the recipes) and the
`optimizer.pt`/`scheduler.pt`/`rng_state.pth` of checkpoints, which the Trainer reads with `torch.load(...,
weights_only=True)` on resume. A `pytorch_model.bin` from elsewhere is a pickle, which can run code when loaded
(`weights_only=True` narrows that, but the format stays one to avoid), so the commands that load a model refuse a
folder that has only pickle weights unless `--allow_pickle_weights` is given, and then warn.

A truncated or overwritten safetensors file is found by reading its header (which also checks that the file is as
long as the header says): the error names the file instead of a raw traceback. Bit flips inside the tensor data
cannot be found: the format has no checksum.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from safetensors import SafetensorError, safe_open

from .data.loading import DataError
from .training import UsageError

logger = logging.getLogger(__name__)

PICKLE_FLAG = "--allow_pickle_weights"
SAFE_WEIGHTS = ("model.safetensors", "adapter_model.safetensors")
SAFE_INDEX = "model.safetensors.index.json"
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "adapter_model.bin")


def safetensors_files(folder: Path) -> list[Path]:
    """The safetensors weight files of a model folder (each shard of a sharded model)."""
    files = [folder / name for name in SAFE_WEIGHTS if (folder / name).is_file()]
    index = folder / SAFE_INDEX
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        except (ValueError, KeyError, TypeError) as err:
            raise DataError(f"{index}: not a valid safetensors index ({err})") from None
        files += [folder / shard for shard in shards]
    return files


def check_safetensors_file(path: Path) -> None:
    """Read the header of a safetensors file: a DataError naming it when it is missing, truncated or not one."""
    if not path.is_file():
        raise DataError(f"{path}: weight file missing (listed in {SAFE_INDEX})")
    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except (SafetensorError, OSError) as err:
        raise DataError(
            f"{path}: not a readable safetensors file ({err}); it is truncated or corrupted, so save or download "
            "the model again"
        ) from None


def check_weights(path: str | os.PathLike | None, allow_pickle: bool = False, flag: str = "--model_name_or_path") -> None:
    """Before anything is loaded: refuse a local model folder whose weights are only pickles (unless
    `allow_pickle`: then warn), and one whose safetensors files are damaged. Hub ids are left to
    `from_pretrained(use_safetensors=...)`."""
    if not path or not Path(path).is_dir():
        return
    folder = Path(path)
    safe = safetensors_files(folder)
    pickled = [name for name in PICKLE_WEIGHTS if (folder / name).is_file()]
    if not safe and pickled:
        if not allow_pickle:
            raise UsageError(
                f"{flag} {folder}: its weights are only a pickle ({', '.join(pickled)}), a format that can run code "
                f"when loaded; convert them to safetensors, or pass {PICKLE_FLAG} if you trust where they come from"
            )
        logger.warning("Loading pickle weights %s (%s): only do this for files you trust",
                       ", ".join(str(folder / name) for name in pickled), PICKLE_FLAG)
    for file in safe:
        check_safetensors_file(file)


def use_safetensors(allow_pickle: bool) -> bool | None:
    """The `use_safetensors` of `from_pretrained`: True (safetensors or an error), or None (safetensors first)."""
    return None if allow_pickle else True


def check_tokenizer_fits(tokenizer, config, source: str) -> None:
    """A tokenizer with more tokens than the embedding has rows would index past it: refuse it up front."""
    vocab_size = getattr(config, "vocab_size", None)
    if vocab_size is not None and len(tokenizer) > vocab_size:
        raise UsageError(
            f"{source}: the tokenizer has {len(tokenizer)} tokens but the model's embedding has {vocab_size} rows; "
            "the folder mixes a tokenizer and a model that were not trained together"
        )
