"""Crash safety of training: atomic checkpoints, a resume after SIGKILL that ends bit for bit where the
uninterrupted run ends, a clean stop on SIGTERM/SIGINT, and early stopping's state across a resume.

The runs are a tiny LSTM language model (dropout 0.3, so the RNG state must survive the crash too) on a generated
text file with a fixed character tokenizer, 2 gradient accumulation steps per optimizer step. Uninterrupted
references and most resumed runs go through `hf_nlpft.cli.main` in this process; the runs that get killed or
signalled are real `python -m hf_nlpft pretrain` processes, and so is the restart after the kill inside a checkpoint
write. The kill inside a checkpoint write is made deterministic by a
wrapper script (test code, not library code) that SIGKILLs its own process from inside the Trainer's save, after
the weights and optimizer of `checkpoint-6` are on disk and before its RNG and trainer state are;
`test_resume_after_kills_at_random_times_is_exact` kills at random moments instead (HF_NLPFT_KILL_ATTEMPTS
attempts, default 1).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import Trainer, TrainingArguments

import hf_nlpft
from hf_nlpft.checkpointing import last_complete_checkpoint, with_atomic_checkpoints
from hf_nlpft.cli import main as cli_main
from hf_nlpft.training import UsageError, check_output_dir

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning")]

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1",
       "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
LSTM = "cell=lstm,embedding_size=16,hidden_size=16,num_layers=1,dropout=0.3"
STEPS = 12

# Run by `python KILLER STEP pretrain ...`: SIGKILL this process while it writes checkpoint-STEP.
KILLER = """
import os, signal, sys
import transformers
step = int(sys.argv[1])
save_rng_state = transformers.Trainer._save_rng_state
def killing_save_rng_state(self, output_dir):
    if self.state.global_step == step:  # weights and optimizer of this checkpoint written, RNG and trainer state not
        os.kill(os.getpid(), signal.SIGKILL)
    return save_rng_state(self, output_dir)
transformers.Trainer._save_rng_state = killing_save_rng_state
from hf_nlpft.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the subprocesses (OMP_NUM_THREADS=1)
    yield
    torch.set_num_threads(threads)


def run_cli(argv: list[str]) -> int:
    try:
        return cli_main(argv)
    except SystemExit as exit_:
        return exit_.code


def run_process(argv: list[str], cwd: Path, *prefix: str) -> subprocess.CompletedProcess:
    """`python -m hf_nlpft ARGV` (or `python PREFIX... ARGV`) in a fresh process."""
    command = [sys.executable, *(prefix or ["-m", "hf_nlpft"]), *argv]
    return subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """train.txt (300 generated sentences) and a character tokenizer (deterministic, unlike the subword trainers)."""
    folder = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    words = "the a cat dog runs sleeps market bank river news sport economy team wins loses big small red blue".split()
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 15))) + "." for _ in range(300)]
    (folder / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    hf_nlpft.train_tokenizer(lines, vocab_size=100, model="char").save_pretrained(folder / "tokenizer")
    return folder


def lm_args(corpus: Path, **flags) -> list[str]:
    values = {"objective": "clm", "arch": "rnn", "config_overrides": LSTM, "train_file": corpus / "train.txt",
              "tokenizer_name": corpus / "tokenizer", "block_size": 16, "max_eval_samples": 4, "max_steps": STEPS,
              "save_steps": 3, "learning_rate": 1e-2, "seed": 5, "per_device_train_batch_size": 4,
              "gradient_accumulation_steps": 2, "logging_steps": 1, "report_to": "none", "disable_tqdm": "true",
              **flags}
    return [item for name, value in values.items() for item in (f"--{name}", str(value))]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def losses(folder: Path) -> list[float]:
    return [entry["loss"] for entry in read_json(folder / "trainer_state.json")["log_history"] if "loss" in entry]


def staging(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".tmp-"))


def checkpoints(folder: Path) -> list[str]:
    return sorted((p.name for p in folder.iterdir() if re.fullmatch(r"checkpoint-\d+", p.name)),
                  key=lambda name: int(name.split("-")[1]))


def assert_complete(checkpoint: Path) -> None:
    state = read_json(checkpoint / "trainer_state.json")
    assert state["global_step"] == int(checkpoint.name.split("-")[1])
    with safe_open(str(checkpoint / "model.safetensors"), "pt") as weights:
        assert weights.keys()
    for name in ("optimizer.pt", "scheduler.pt"):
        torch.load(checkpoint / name, weights_only=True)
    assert "cpu" in torch.load(checkpoint / "rng_state.pth", weights_only=False)  # numpy state: not weights_only


def assert_same_run(resumed: Path, reference: Path) -> None:
    """Bit-identical final weights and the same logged training losses."""
    assert (resumed / "model.safetensors").read_bytes() == (reference / "model.safetensors").read_bytes()
    assert losses(resumed) == losses(reference)
    assert read_json(resumed / "trainer_state.json")["global_step"] == read_json(reference / "trainer_state.json")["global_step"]


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory) -> Path:
    """The uninterrupted run (in this process): 12 steps, a checkpoint every 3, at most 2 kept."""
    folder = tmp_path_factory.mktemp("reference") / "model"
    assert run_cli(["pretrain", *lm_args(corpus, save_total_limit=2), "--output_dir", str(folder)]) == 0
    return folder


# --- 1. atomic checkpoints ---------------------------------------------------------------------------------------


def test_checkpoints_rotate_and_nothing_is_left_staged(reference):
    assert checkpoints(reference) == ["checkpoint-9", "checkpoint-12"]  # --save_total_limit 2 still rotates
    for name in checkpoints(reference):
        assert_complete(reference / name)
    assert staging(reference) == []
    assert len(losses(reference)) == STEPS


def test_resume_after_a_kill_inside_a_checkpoint_write_is_exact(corpus, reference, tmp_path):
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER, encoding="utf-8")
    folder = tmp_path / "model"
    argv = ["pretrain", *lm_args(corpus, save_total_limit=2), "--output_dir", str(folder)]
    result = run_process(argv, tmp_path, str(killer), "6")
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    # The half-written checkpoint-6 is only in its staging folder; checkpoint-3 is whole and the one to resume.
    assert checkpoints(folder) == ["checkpoint-3"] and staging(folder) == [".tmp-checkpoint-6"]
    half = folder / ".tmp-checkpoint-6" / "checkpoint-6"
    assert (half / "model.safetensors").is_file() and not (half / "trainer_state.json").exists()
    assert_complete(folder / "checkpoint-3")
    assert last_complete_checkpoint(folder) == str(folder / "checkpoint-3")

    # Restarted as a new process, as after a real crash.
    result = run_process([*argv, "--resume_from_checkpoint", "auto"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert staging(folder) == []
    assert_same_run(folder, reference)


def test_resume_after_kills_at_random_times_is_exact(corpus, reference, tmp_path):
    """SIGKILL at a random moment while checkpoints are written at every step; whatever is left must hold only
    complete checkpoints, and the resumed run must end bit for bit like the reference."""
    rng = random.Random()
    for attempt in range(int(os.environ.get("HF_NLPFT_KILL_ATTEMPTS", "1"))):
        folder = tmp_path / f"attempt-{attempt}"
        argv = ["pretrain", *lm_args(corpus, save_steps=1), "--output_dir", str(folder)]
        process = subprocess.Popen([sys.executable, "-m", "hf_nlpft", *argv], cwd=tmp_path, env=ENV,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not (folder / "checkpoint-2").exists() and process.poll() is None:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.3))
            process.kill()
        finally:
            process.wait(timeout=60)
        print(f"attempt {attempt}: exit {process.returncode}, left {checkpoints(folder)} {staging(folder)}")
        for name in checkpoints(folder):
            assert_complete(folder / name)
        if process.returncode == 0:  # finished before the kill: nothing to resume
            continue
        assert run_cli([*argv, "--resume_from_checkpoint", "auto"]) == 0
        assert staging(folder) == []
        assert_same_run(folder, reference)


def test_auto_resume_skips_incomplete_checkpoints_and_removes_staging(tmp_path, capsys):
    folder = tmp_path / "model"
    for name, files in {"checkpoint-3": ["trainer_state.json", "model.safetensors"],
                        "checkpoint-6": ["model.safetensors"],  # an older version's crash: no trainer state
                        "checkpoint-9": ["trainer_state.json", "checkpoint-is-incomplete.txt"],  # a JIT checkpoint
                        ".tmp-checkpoint-12/checkpoint-12": ["model.safetensors"],
                        ".tmp-save-x1y2": ["model.safetensors"]}.items():
        (folder / name).mkdir(parents=True)
        for file in files:
            (folder / name / file).write_text("{}", encoding="utf-8")
    args = TrainingArguments(output_dir=str(folder), resume_from_checkpoint="auto", report_to="none")
    assert check_output_dir(args, overwrite_output_dir=False) == str(folder / "checkpoint-3")
    assert args.resume_from_checkpoint == str(folder / "checkpoint-3")
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint-3", "checkpoint-6", "checkpoint-9"]

    # Named explicitly, an incomplete checkpoint is refused (exit 2), before any data is read.
    argv = ["pretrain", "--objective", "clm", "--arch", "rnn", "--train_file", "no/such.txt", "--output_dir",
            str(folder), "--resume_from_checkpoint", str(folder / "checkpoint-6")]
    assert run_cli(argv) == 2
    assert f"--resume_from_checkpoint {folder / 'checkpoint-6'}: an incomplete checkpoint" in capsys.readouterr().err

    # Nothing complete: `auto` starts afresh over what a killed run leaves, and refuses to replace anything else.
    (folder / "checkpoint-3" / "trainer_state.json").unlink()
    (folder / "trained_tokenizer").mkdir()
    assert check_output_dir(args_auto := TrainingArguments(output_dir=str(folder), resume_from_checkpoint="auto",
                                                           report_to="none"), False) is None
    assert args_auto.resume_from_checkpoint is None
    (folder / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(UsageError, match="holds no complete checkpoint .* pass --overwrite_output_dir"):
        check_output_dir(TrainingArguments(output_dir=str(folder), resume_from_checkpoint="auto", report_to="none"), False)


def test_final_save_replaces_each_file_atomically(tmp_path, monkeypatch):
    """`save_model` stages the files and renames them into place: a failure part way leaves the previous weights,
    and the shards of an earlier sharded save are removed once the new weights are in."""
    config = hf_nlpft.RnnConfig(vocab_size=20, embedding_size=4, hidden_size=4, num_layers=1)
    model = hf_nlpft.RnnForCausalLM(config)
    folder = tmp_path / "model"
    trainer = with_atomic_checkpoints(Trainer)(model=model, args=TrainingArguments(output_dir=str(folder), report_to="none"))
    trainer.save_model()
    before = (folder / "model.safetensors").read_bytes()

    with torch.no_grad():
        model.lm_head.decoder.bias.add_(1.0)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", fail)  # training_args.bin is written after the weights
        with pytest.raises(OSError, match="disk full"):
            trainer.save_model()
    assert (folder / "model.safetensors").read_bytes() == before
    assert staging(folder) == []

    for stale in ("model-00001-of-00002.safetensors", "model.safetensors.index.json"):
        (folder / stale).write_text("{}", encoding="utf-8")
    trainer.save_model()
    assert (folder / "model.safetensors").read_bytes() != before
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "configuration_nlpft_rnn.py",
                                                         "generation_config.json", "model.safetensors",
                                                         "modeling_nlpft_rnn.py", "training_args.bin"]


# --- 3. SIGTERM / SIGINT -----------------------------------------------------------------------------------------

STOPPED = re.compile(r"stopped by (SIG\w+) after step (\d+); checkpoint written to (\S+); run the same command "
                     r"again with --resume_from_checkpoint auto to continue")


def test_sigterm_finishes_the_step_writes_a_checkpoint_and_exits_143(corpus, tmp_path):
    """A long run (constant learning rate) gets SIGTERM after its first logged step. Resumed up to step N+4, it
    ends bit for bit like a run of N+4 steps in one go: the stop fell between optimizer steps, not inside one."""
    folder = tmp_path / "model"
    flags = {"lr_scheduler_type": "constant", "save_steps": 1000}
    process = subprocess.Popen(
        [sys.executable, "-m", "hf_nlpft", "pretrain", *lm_args(corpus, **flags, max_steps=100_000),
         "--output_dir", str(folder)],
        cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        for line in process.stdout:
            if "'loss'" in line:  # the first step is logged
                process.send_signal(signal.SIGTERM)
                break
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143, err[-3000:]
    match = STOPPED.search(err)
    assert match and match.group(1) == "SIGTERM", err[-3000:]
    step = int(match.group(2))
    assert match.group(3) == str(folder / f"checkpoint-{step}")
    assert checkpoints(folder) == [f"checkpoint-{step}"] and staging(folder) == []
    assert_complete(folder / f"checkpoint-{step}")
    assert not (folder / "model.safetensors").exists()  # not a finished model

    target = str(step + 4)
    assert run_cli(["pretrain", *lm_args(corpus, **flags, max_steps=target), "--output_dir", str(folder),
                    "--resume_from_checkpoint", "auto"]) == 0
    whole = tmp_path / "whole"
    assert run_cli(["pretrain", *lm_args(corpus, **flags, max_steps=target), "--output_dir", str(whole)]) == 0
    assert_same_run(folder, whole)


@pytest.fixture
def signal_on_first_log(monkeypatch):
    """`arm(signum, times)`: the first logged training loss sends `signum` to this process `times` times."""

    def arm(signum: int, times: int = 1) -> None:
        log = Trainer.log
        sent = []

        def log_and_signal(self, logs, *args, **kwargs):
            log(self, logs, *args, **kwargs)
            if "loss" in logs and not sent:
                sent.append(True)
                for _ in range(times):
                    os.kill(os.getpid(), signum)

        monkeypatch.setattr(Trainer, "log", log_and_signal)

    return arm


@pytest.fixture
def interactive_signals():
    """Python's interactive defaults (Ctrl-C raises KeyboardInterrupt), whatever the test runner inherited: under
    `nohup` or a CI runner SIGINT may arrive ignored (SIG_IGN)."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_sigint_stops_cleanly_and_a_second_one_at_once(
    corpus, tmp_path, signal_on_first_log, monkeypatch, capsys, interactive_signals
):
    folder = tmp_path / "model"
    argv = ["pretrain", *lm_args(corpus), "--output_dir", str(folder)]
    signal_on_first_log(signal.SIGINT)
    assert run_cli(argv) == 130
    err = capsys.readouterr().err
    assert f"stopped by SIGINT after step 2; checkpoint written to {folder / 'checkpoint-2'}; run the same command" in err
    assert checkpoints(folder) == ["checkpoint-2"]
    assert_complete(folder / "checkpoint-2")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the previous handlers are back
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL

    other = tmp_path / "other"
    monkeypatch.undo()
    signal_on_first_log(signal.SIGINT, times=2)  # the second one: a plain KeyboardInterrupt, no checkpoint
    assert run_cli(["pretrain", *lm_args(corpus), "--output_dir", str(other)]) == 130
    assert "hf-nlpft pretrain: interrupted" in capsys.readouterr().err
    assert checkpoints(other) == [] and staging(other) == []
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# --- 2. early stopping across a resume -----------------------------------------------------------------------------


def test_early_stopping_patience_survives_an_interrupted_run(tmp_path, signal_on_first_log, monkeypatch):
    """With a learning rate of 0 the metric never improves: patience 2 stops the run at step 3. Interrupted at
    step 2 (patience counter 1) and resumed, it must still stop at 3, not start counting again."""
    rows = [{"text": f"{word} {i}", "label": "pos" if i % 2 else "neg"} for i, word in
            enumerate(["good", "bad", "fine", "poor"] * 8)]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    argv = ["finetune", "--task", "text-classification", "--arch", "rnn", "--config_overrides", LSTM,
            "--train_file", str(data), "--validation_split_percentage", "25", "--tokenizer_model", "char",
            "--learning_rate", "0", "--max_steps", "20", "--per_device_train_batch_size", "4",
            "--eval_strategy", "steps", "--eval_steps", "1", "--save_steps", "1", "--early_stopping_patience", "2",
            "--logging_steps", "1", "--report_to", "none", "--disable_tqdm", "true"]
    whole = tmp_path / "whole"
    assert run_cli([*argv, "--output_dir", str(whole)]) == 0
    assert read_json(whole / "trainer_state.json")["global_step"] == 3

    folder = tmp_path / "interrupted"
    signal_on_first_log(signal.SIGINT)
    assert run_cli([*argv, "--output_dir", str(folder)]) == 130
    state = read_json(folder / "checkpoint-2" / "trainer_state.json")
    assert state["stateful_callbacks"]["EarlyStoppingCallback"]["attributes"]["early_stopping_patience_counter"] == 1
    monkeypatch.undo()
    assert run_cli([*argv, "--output_dir", str(folder), "--resume_from_checkpoint", "auto"]) == 0
    resumed = read_json(folder / "trainer_state.json")
    assert resumed["global_step"] == 3  # 4 if the counter had started again from 0
    evaluations = [[entry["eval_f1_macro"] for entry in read_json(run / "trainer_state.json")["log_history"]
                    if "eval_f1_macro" in entry] for run in (whole, folder)]
    assert evaluations[1] == evaluations[0] and len(evaluations[0]) == 3
