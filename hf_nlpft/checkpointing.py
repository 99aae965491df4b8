"""Crash-safe checkpoints, and a clean stop on SIGINT/SIGTERM, for the Trainers the recipes build.

Atomic checkpoints. The Trainer writes `checkpoint-N` in place, file after file: a crash part way leaves a
folder that looks like a checkpoint and is not one. `with_atomic_checkpoints(Trainer)` runs the Trainer's own
`_save_checkpoint`, unchanged, into a staging folder `.tmp-checkpoint-N/checkpoint-N` (a name that
`get_last_checkpoint` and the rotation's `checkpoint-*` glob never match), syncs its files to disk, and only then
renames it to `checkpoint-N`: every `checkpoint-N` is complete, or absent. Rotation (`--save_total_limit`) runs
after the rename, on the real folder. The final model (`trainer.save_model()`) is written the same way into a
`.tmp-save-*` folder, then moved into `--output_dir` file by file: each file (`model.safetensors`, the config,
the tokenizer files, ...) is replaced atomically, but the set is not (the output folder holds more than the model,
so it cannot be renamed as a whole): a crash during those few renames may leave a new `model.safetensors` beside an
old `config.json`. The other files the recipes write (metrics JSON, `trainer_state.json`, plots, the card) are
written in place.

`last_complete_checkpoint` is what `--resume_from_checkpoint auto` uses: the newest `checkpoint-N` that holds a
`trainer_state.json` (the Trainer writes it last) and no `checkpoint-is-incomplete.txt` (Transformers' JIT
checkpoint marker). `remove_staging_leftovers` deletes the `.tmp-*` folders of a run that died.

Stop on a signal. `stop_on_signals(trainer)` catches the first SIGINT or SIGTERM: the step under way finishes
(all its gradient accumulation micro-batches), a checkpoint is written, training stops, and `TrainingInterrupted`
(exit status 130 or 143 through the CLI) says how to resume. A second signal acts at once, as it would have
without us. In a multi-process run the request is shared at every step end, so all processes stop at the same step.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

logger = logging.getLogger(__name__)

STAGING_PREFIX = ".tmp-"  # .tmp-checkpoint-N (a checkpoint being written), .tmp-save-* (the final model)
TRAINER_STATE_NAME = "trainer_state.json"
INCOMPLETE_MARKER = "checkpoint-is-incomplete.txt"  # left in a checkpoint by Transformers' JIT checkpointing
_CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
RESUME_HINT = "run the same command again with --resume_from_checkpoint auto to continue"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# --- finding checkpoints ----------------------------------------------------------------------------------------


def is_complete_checkpoint(path: str | os.PathLike) -> bool:
    folder = Path(path)
    return (folder / TRAINER_STATE_NAME).is_file() and not (folder / INCOMPLETE_MARKER).exists()


def checkpoint_folders(folder: str | os.PathLike) -> list[Path]:
    """The `checkpoint-N` folders of `folder`, newest (highest N) first."""
    found = []
    for entry in Path(folder).iterdir():
        match = _CHECKPOINT_NAME.match(entry.name)
        if match and entry.is_dir():
            found.append((int(match.group(1)), entry))
    return [entry for _, entry in sorted(found, reverse=True)]


def last_complete_checkpoint(folder: str | os.PathLike) -> str | None:
    """The newest complete checkpoint in `folder`; incomplete ones (no trainer_state.json: a crash of a version
    that wrote in place) are skipped with a warning."""
    for checkpoint in checkpoint_folders(folder):
        if is_complete_checkpoint(checkpoint):
            return str(checkpoint)
        logger.warning("Skipping %s: an incomplete checkpoint (no %s)", checkpoint, TRAINER_STATE_NAME)
    return None


def staging_leftovers(folder: str | os.PathLike) -> list[Path]:
    return sorted(entry for entry in Path(folder).iterdir() if entry.name.startswith(STAGING_PREFIX))


def remove_staging_leftovers(folder: str | os.PathLike) -> None:
    """Delete the half-written `.tmp-*` checkpoints and saves a killed run left behind."""
    for entry in staging_leftovers(folder):
        logger.info("Removing %s, left by an interrupted save", entry)
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


# --- writing atomically -----------------------------------------------------------------------------------------


def _fsync(path: Path) -> None:
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:  # a folder on Windows cannot be opened
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def fsync_tree(folder: Path) -> None:
    """Flush every file under `folder`, then the folders themselves, so a rename publishes data on disk."""
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync(Path(root) / name)
        _fsync(Path(root))


def publish_folder(staged: Path, final: Path) -> None:
    """Rename the complete folder `staged` to `final`, replacing a folder already there (the same step saved again,
    e.g. after resuming from an earlier checkpoint)."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.with_name(f"{STAGING_PREFIX}old-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(staged, final)
    _fsync(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


WEIGHT_FILE = re.compile(r"^(model|pytorch_model|adapter_model)(-\d+-of-\d+)?\.(safetensors|bin)(\.index\.json)?$")


def move_files_into(staged: Path, target: Path) -> None:
    """Move every file of `staged` into `target`, each with an atomic rename; then drop weight files of an earlier
    save that this one did not write (old shards), as `save_pretrained` does in place."""
    written = set()
    for root, _, files in os.walk(staged):
        for name in files:
            source = Path(root) / name
            relative = source.relative_to(staged)
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, destination)
            written.add(relative.as_posix())
    _fsync(target)
    for entry in target.iterdir():
        if entry.is_file() and WEIGHT_FILE.match(entry.name) and entry.name not in written:
            entry.unlink(missing_ok=True)


class AtomicCheckpointMixin:
    """Put before a Trainer class: checkpoints appear complete or not at all; final weights replace atomically."""

    _checkpoint_staging_root: str | None = None

    def _get_output_dir(self, trial) -> str:
        # While a checkpoint is saved, the Trainer's own `_save_checkpoint` writes into the staging folder.
        if self._checkpoint_staging_root is not None:
            return self._checkpoint_staging_root
        return super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = Path(self._get_output_dir(trial))
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        final, staging_root = run_dir / name, run_dir / f"{STAGING_PREFIX}{name}"
        staged = staging_root / name
        if self.args.should_save:
            shutil.rmtree(staging_root, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        self._checkpoint_staging_root = str(staging_root)
        try:
            super()._save_checkpoint(model, trial)
        finally:
            self._checkpoint_staging_root = None
        # When this checkpoint is the best so far the Trainer recorded its staging path: point at the real one.
        best = self.state.best_model_checkpoint
        if best is not None and Path(best).parent == staging_root:
            self.state.best_model_checkpoint = str(run_dir / Path(best).name)
            if self.args.should_save:
                self.state.save_to_json(str(staged / TRAINER_STATE_NAME))
        self.accelerator.wait_for_everyone()  # every process has written its part (RNG states, shards)
        if self.args.should_save:
            fsync_tree(staged)
            publish_folder(staged, final)
            shutil.rmtree(staging_root, ignore_errors=True)
            rotate_checkpoints(
                output_dir=str(run_dir),
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )
        self.accelerator.wait_for_everyone()

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if self._checkpoint_staging_root is not None or not self.args.should_save:
            return super()._save(output_dir, state_dict=state_dict)  # a checkpoint: already staged as a whole
        target = Path(output_dir)
        target.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}save-", dir=target))
        try:
            super()._save(str(staged), state_dict=state_dict)
            fsync_tree(staged)
            move_files_into(staged, target)
        finally:
            shutil.rmtree(staged, ignore_errors=True)


@functools.cache
def with_atomic_checkpoints(trainer_class: type) -> type:
    """`trainer_class` with atomic checkpoints and final weights (one subclass per class, made once)."""
    if issubclass(trainer_class, AtomicCheckpointMixin):
        return trainer_class
    return type(trainer_class.__name__, (AtomicCheckpointMixin, trainer_class), {"__module__": __name__})


# --- stopping on a signal ---------------------------------------------------------------------------------------


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped cleanly on SIGINT/SIGTERM after writing a checkpoint; `exit_code` is 128 + the signal."""

    def __init__(self, signum: int, step: int, checkpoint: str | None):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_code = 128 + signum
        where = f"checkpoint written to {checkpoint}" if checkpoint else "no checkpoint was written"
        super().__init__(f"stopped by {signal.Signals(signum).name} after step {step}; {where}; {RESUME_HINT}")


class StopOnSignalCallback(TrainerCallback):
    """Turns a stop request (a flag set by the signal handler) into: finish the step, checkpoint, stop."""

    def __init__(self):
        self.signum: int | None = None  # the signal received by this process
        self.stopping_signum: int | None = None  # the signal acted on (from any process)
        self.mid_epoch = False
        self.saved_args: dict = {}

    def request(self, signum: int) -> None:
        self.signum = signum

    def _requested(self, args) -> int | None:
        """The signal received by this or any other process, the same answer on every process."""
        signum = self.signum or 0
        if args.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([signum], device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            signum = int(flag.item())
        return signum or None

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopping_signum is None:
            self.stopping_signum = self._requested(args)
        if self.stopping_signum is None:
            return
        control.should_training_stop = True
        # At the end of an epoch, the epoch's own evaluation comes first and the save after it (on_epoch_end);
        # mid-epoch, save now and skip what the end of the (cut) epoch would do.
        self.mid_epoch = not float(state.epoch or 0).is_integer()
        if self.mid_epoch:
            control.should_save = True

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.stopping_signum is None:
            return
        if self.mid_epoch:
            control.should_evaluate = control.should_log = control.should_save = False
        else:
            control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        if self.stopping_signum is None:
            return
        # The checkpoint is written. What the Trainer does at a normal end would only waste time (reload the best
        # model) or delete the checkpoint just written (--save_total_limit 1 with a best model): turn both off.
        for name, value in (("load_best_model_at_end", False), ("save_total_limit", None)):
            self.saved_args.setdefault(name, getattr(args, name))
            setattr(args, name, value)

    def restore_args(self, args) -> None:
        for name, value in self.saved_args.items():
            setattr(args, name, value)
        self.saved_args = {}


@contextlib.contextmanager
def stop_on_signals(trainer):
    """While training: the first SIGINT/SIGTERM stops training after the current step and a checkpoint.

    Yields the callback; after the block, `callback.stopping_signum` is the signal that stopped training (None:
    it ran to its end). The previous handlers are restored on the way out. Signals can only be caught in the
    main thread; elsewhere this does nothing. With `--enable_jit_checkpoint`, SIGTERM is left to Transformers.
    """
    callback = StopOnSignalCallback()
    previous = {}

    def handle(signum, frame):
        if callback.signum is None:
            callback.request(signum)
            logger.warning(
                "%s received: finishing the current step, then writing a checkpoint and stopping (send it again to "
                "stop at once)", signal.Signals(signum).name,
            )
            return
        # A second signal: do what would have happened without us.
        handler = previous.get(signum, signal.SIG_DFL)
        signal.signal(signum, handler)
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            os.kill(os.getpid(), signum)

    signals = [s for s in STOP_SIGNALS if not (s == signal.SIGTERM and getattr(trainer.args, "enable_jit_checkpoint", False))]
    if threading.current_thread() is threading.main_thread():
        for signum in signals:
            previous[signum] = signal.signal(signum, handle)
    trainer.add_callback(callback)
    try:
        yield callback
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        trainer.remove_callback(callback)
        callback.restore_args(trainer.args)
