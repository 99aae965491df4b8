"""Safe model loading: safetensors only unless `--allow_pickle_weights`, damaged weight files named, and a tokenizer
that does not fit the model refused, through the real commands (evaluate, predict, finetune, pretrain).

The model folders are built here in a second (a tiny untrained classifier), not trained: these tests are about
what the commands accept, not about what the model predicts.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
import torch
from finetune_runs import RNN, TRAINER_ARGS, run_cli
from safetensors.torch import load_file
from transformers import AutoTokenizer

import hf_nlpft
from hf_nlpft import RnnConfig, RnnForSequenceClassification

pytestmark = pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning")

TEXTS = ["a fine film", "a dull film", "great acting", "poor acting", "loved it", "hated it"]


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    """A text classifier folder as finetune writes it: safetensors weights, config with labels and task, tokenizer."""
    folder = tmp_path_factory.mktemp("safe") / "classifier"
    tokenizer = hf_nlpft.train_tokenizer(TEXTS, vocab_size=60, model="char")
    config = RnnConfig(vocab_size=len(tokenizer), embedding_size=8, hidden_size=8, num_layers=1, num_labels=2,
                       id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1}, pad_token_id=tokenizer.pad_token_id)
    config.nlpft_task = "text-classification"
    torch.manual_seed(0)
    RnnForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pickle_folder(model_folder, tmp_path_factory) -> Path:
    """The same model with its weights as a pickle (pytorch_model.bin) and no safetensors file."""
    folder = tmp_path_factory.mktemp("pickle") / "classifier"
    shutil.copytree(model_folder, folder)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("data")
    rows = [{"text": text, "label": "pos" if i % 2 == 0 else "neg"} for i, text in enumerate(TEXTS * 3)]
    for name in ("train", "test"):
        (folder / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    (folder / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS), encoding="utf-8")
    return {"train": folder / "train.jsonl", "test": folder / "test.jsonl", "input": folder / "in.jsonl"}


def command(name: str, model: Path, data: dict[str, Path], out: Path) -> list[str]:
    """`hf-nlpft NAME` on `model`; data files that would be read after the model checks."""
    if name == "evaluate":
        return ["evaluate", "--model_name_or_path", str(model), "--test_file", str(data["test"]),
                "--output_file", str(out / "metrics.json")]
    if name == "predict":
        return ["predict", "--model_name_or_path", str(model), "--input_file", str(data["input"]),
                "--output_file", str(out / "predictions.jsonl")]
    return ["finetune", "--task", "text-classification", "--model_name_or_path", str(model), "--train_file",
            str(data["train"]), "--validation_file", str(data["test"]), "--max_steps", "1", *TRAINER_ARGS,
            "--output_dir", str(out / "finetuned")]


COMMANDS = ["evaluate", "predict", "finetune"]


# --- 4. pickle weights: refused unless --allow_pickle_weights ------------------------------------------------------


@pytest.mark.parametrize("name", COMMANDS)
def test_pickle_only_folder_is_refused_naming_the_flag(name, pickle_folder, data, tmp_path, capsys):
    assert run_cli(command(name, pickle_folder, data, tmp_path)) == 2
    err = capsys.readouterr().err
    assert f"{pickle_folder}: its weights are only a pickle (pytorch_model.bin)" in err
    assert "--allow_pickle_weights" in err
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


@pytest.mark.parametrize("name", COMMANDS)
def test_allow_pickle_weights_loads_them_with_a_warning(name, pickle_folder, data, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="hf_nlpft.weights"):
        assert run_cli([*command(name, pickle_folder, data, tmp_path), "--allow_pickle_weights"]) == 0
    assert f"Loading pickle weights {pickle_folder / 'pytorch_model.bin'} (--allow_pickle_weights)" in caplog.text


def test_pretrain_from_a_pickle_only_folder_is_refused(pickle_folder, data, tmp_path, capsys):
    argv = ["pretrain", "--objective", "clm", "--model_name_or_path", str(pickle_folder), "--train_file",
            str(tmp_path / "absent.txt"), "--output_dir", str(tmp_path / "out")]
    assert run_cli(argv) == 2
    assert "--allow_pickle_weights" in capsys.readouterr().err


def test_every_weight_file_a_run_writes_is_safetensors(tmp_path):
    """A short finetune run (with a checkpoint) writes no pytorch_model.bin anywhere; the only pickles are the
    Trainer's training_args.bin and the checkpoint's optimizer/scheduler/RNG states (read back with weights_only)."""
    rows = [{"text": text, "label": "pos" if i % 2 == 0 else "neg"} for i, text in enumerate(TEXTS * 4)]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    out = tmp_path / "out"
    assert run_cli(["finetune", "--task", "text-classification", "--arch", "rnn", "--config_overrides", RNN,
                    "--train_file", str(train), "--validation_split_percentage", "25", "--tokenizer_model", "char",
                    "--max_steps", "2", "--save_steps", "1", *TRAINER_ARGS, "--output_dir", str(out)]) == 0
    pickles = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.suffix in (".bin", ".pt", ".pth"))
    assert pickles == ["checkpoint-1/optimizer.pt", "checkpoint-1/rng_state.pth", "checkpoint-1/scheduler.pt",
                       "checkpoint-1/training_args.bin", "checkpoint-2/optimizer.pt", "checkpoint-2/rng_state.pth",
                       "checkpoint-2/scheduler.pt", "checkpoint-2/training_args.bin", "training_args.bin"]
    assert (out / "model.safetensors").is_file() and (out / "checkpoint-2" / "model.safetensors").is_file()


# --- 5. damaged weights, and a tokenizer that does not fit ---------------------------------------------------------


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [(truncated, "incomplete metadata, file not fully covered"), (lambda data: b"", "header too small"),
     (lambda data: b"<html>Not Found</html>" * 10, "header too large")],
    ids=["truncated", "empty", "html-page"],
)
@pytest.mark.parametrize("name", COMMANDS)
def test_damaged_safetensors_names_the_file(name, damage, reason, model_folder, data, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("damaged") / "classifier"
    shutil.copytree(model_folder, folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    out = tmp_path_factory.mktemp("out")
    assert run_cli(command(name, folder, data, out)) == 1
    err = capsys.readouterr().err
    assert f"error: {weights}: not a readable safetensors file" in err and reason in err
    assert "Traceback" not in err
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("name", ["evaluate", "predict"])
def test_tokenizer_larger_than_the_embedding_is_refused(name, model_folder, data, tmp_path_factory, capsys):
    folder = tmp_path_factory.mktemp("mismatch") / "classifier"
    shutil.copytree(model_folder, folder)
    bigger = hf_nlpft.train_tokenizer([*TEXTS, "xyzqwvjk ÄÖÜ ßø 0123456789"], vocab_size=200, model="char")
    bigger.save_pretrained(folder)
    vocab_size = json.loads((folder / "config.json").read_text(encoding="utf-8"))["vocab_size"]
    assert len(AutoTokenizer.from_pretrained(folder)) > vocab_size
    out = tmp_path_factory.mktemp("out")
    assert run_cli(command(name, folder, data, out)) == 2
    err = capsys.readouterr().err
    assert f"{folder}: the tokenizer has {len(bigger)} tokens but the model's embedding has {vocab_size} rows" in err
    assert list(out.iterdir()) == []
