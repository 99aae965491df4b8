"""Pieces every training recipe shares: output folder safety, resume, tokenizer, and the files written after training."""

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase, Trainer, TrainingArguments
from transformers.utils import logging as transformers_logging

from .checkpointing import (
    INCOMPLETE_MARKER,
    STAGING_PREFIX,
    TRAINER_STATE_NAME,
    TrainingInterrupted,
    checkpoint_folders,
    is_complete_checkpoint,
    last_complete_checkpoint,
    remove_staging_leftovers,
    stop_on_signals,
)
from .distributed import restore_model_class_name
from .plots import plot_loss_curve
from .tokenization import train_tokenizer

logger = logging.getLogger(__name__)


TOKENIZER_STAGING_DIR = "trained_tokenizer"  # a tokenizer trained for a run waits here until the model is saved


class UsageError(ValueError):
    """Arguments that contradict each other or the files on disk; raised before any data is read."""


def check_output_dir(training_args: TrainingArguments, overwrite_output_dir: bool) -> str | None:
    """Refuse to mix into a non-empty output folder unless resuming or told to; return the checkpoint to resume.

    `--resume_from_checkpoint auto` picks the newest complete checkpoint in `--output_dir` (none: start fresh, when
    the folder holds nothing else than what an interrupted run leaves). Half-written `.tmp-*` folders of a killed
    run are removed once the run is allowed to write there.
    """
    output_dir = Path(training_args.output_dir)
    resume = training_args.resume_from_checkpoint
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"--output_dir {output_dir} exists and is not a folder")
    leftovers_only = False
    if resume == "auto":
        resume = last_complete_checkpoint(output_dir) if output_dir.is_dir() else None
        training_args.resume_from_checkpoint = resume
        if resume:
            logger.info("Resuming from %s", resume)
        elif output_dir.is_dir():
            # Killed before its first complete checkpoint: only staging folders, the staged tokenizer, incomplete
            # checkpoints. Anything else (a finished model without checkpoints, other files) is not ours to replace.
            incomplete = checkpoint_folders(output_dir)  # all incomplete, since none was complete
            leftovers_only = all(
                entry.name.startswith(STAGING_PREFIX) or entry.name == TOKENIZER_STAGING_DIR or entry in incomplete
                for entry in output_dir.iterdir()
            )
            if not leftovers_only and not overwrite_output_dir:
                raise UsageError(
                    f"--resume_from_checkpoint auto: {output_dir} holds no complete checkpoint (a checkpoint-N folder "
                    f"with {TRAINER_STATE_NAME}) but other files; pass --overwrite_output_dir to start afresh there"
                )
    elif resume:
        if not Path(resume).is_dir():
            raise UsageError(f"--resume_from_checkpoint {resume}: no such checkpoint folder")
        if not is_complete_checkpoint(resume):
            raise UsageError(
                f"--resume_from_checkpoint {resume}: an incomplete checkpoint (no {TRAINER_STATE_NAME}, or a "
                f"{INCOMPLETE_MARKER}); give an earlier one, or --resume_from_checkpoint auto for the newest complete one"
            )
    if output_dir.is_dir() and any(output_dir.iterdir()) and not (resume or leftovers_only or overwrite_output_dir):
        raise UsageError(
            f"--output_dir {output_dir} already exists and is not empty; pass --overwrite_output_dir to write "
            "into it, or --resume_from_checkpoint auto to continue its run"
        )
    if output_dir.is_dir() and training_args.process_index == 0:
        remove_staging_leftovers(output_dir)
    return resume


def load_or_train_tokenizer(
    tokenizer_name: str | None,
    model_name_or_path: str | None,
    texts,
    training_args: TrainingArguments,
    *,
    model: str,
    vocab_size: int,
    lowercase: bool,
    model_max_length: int,
) -> PreTrainedTokenizerBase:
    """The named tokenizer, else the checkpoint's, else one trained on `texts` (by the main process, once)."""
    source = tokenizer_name or model_name_or_path
    if source:
        return AutoTokenizer.from_pretrained(source)
    staging = Path(training_args.output_dir) / TOKENIZER_STAGING_DIR
    with training_args.main_process_first(desc="train tokenizer"):
        # Always trained afresh: a staged tokenizer left by an earlier, failed run may have other settings.
        if training_args.process_index == 0:
            tokenizer = train_tokenizer(
                texts, vocab_size=vocab_size, model=model, lowercase=lowercase, model_max_length=model_max_length
            )
            tokenizer.save_pretrained(staging)
        tokenizer = AutoTokenizer.from_pretrained(staging)
    return tokenizer


def describe_tokenizer(tokenizer: PreTrainedTokenizerBase) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    kind = type(backend.model).__name__ if backend is not None else type(tokenizer).__name__
    return f"{kind}, {len(tokenizer):,} tokens"


def write_run_outputs(trainer: Trainer, output_dir: str) -> list[str]:
    """Loss curve PNG beside the model; returns the plot file names (for the model card)."""
    plots = []
    if trainer.is_world_process_zero() and plot_loss_curve(trainer.state.log_history, Path(output_dir) / "loss_curve.png"):
        plots.append("loss_curve.png")
    return plots


def write_text_atomically(path: str | Path, text: str) -> None:
    """Write beside the target, then rename: a crash leaves either no file or the previous one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, prefix=f".{path.name}.", delete=False)
    try:
        with handle:
            handle.write(text)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def save_json(path: Path, values: dict) -> None:
    path.write_text(json.dumps(values, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def setup_logging() -> None:
    """The recipes' console logging: our INFO lines, Transformers' warnings and progress bars."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers_logging.set_verbosity_warning()


def train_and_save(trainer: Trainer, resume: str | None, model_use_cache: bool | None, **extra_metrics) -> dict:
    """Train, save the final model and write train metrics and trainer state; returns the train metrics.

    A SIGINT/SIGTERM during training stops it after the current step with a checkpoint, and raises
    `TrainingInterrupted` instead of saving the final model.

    `model_use_cache` is the model's own setting read before the Trainer was built: the Trainer turns the cache
    off for training, and the saved config must keep what the model had.
    """
    if resume:  # the callbacks' state too (early stopping's patience counter), not only the model and optimizer
        trainer.args.restore_callback_states_from_checkpoint = True
    with stop_on_signals(trainer) as stop:
        train_result = trainer.train(resume_from_checkpoint=resume)
    if stop.stopping_signum is not None:
        step = trainer.state.global_step
        checkpoint = Path(trainer.args.output_dir) / f"checkpoint-{step}"
        raise TrainingInterrupted(stop.stopping_signum, step, str(checkpoint) if checkpoint.is_dir() else None)
    if model_use_cache is not None:
        trainer.model.config.use_cache = model_use_cache
    restore_model_class_name(trainer.accelerator.unwrap_model(trainer.model))  # FSDP2 renamed it
    trainer.save_model()
    metrics = {**train_result.metrics, **extra_metrics}
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    return metrics


def remove_tokenizer_staging(output_dir: str | Path) -> None:
    shutil.rmtree(Path(output_dir) / TOKENIZER_STAGING_DIR, ignore_errors=True)
