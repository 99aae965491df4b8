"""Does pretraining help? The same LSTM classifier on bbc_news, from scratch vs from the bbc_news LM, 10% / 100% labels.

    .venv/bin/python scripts/pretraining_evidence.py --output_dir runs/evidence            # pretrains the LM too
    .venv/bin/python scripts/pretraining_evidence.py --lm_dir runs/demo-*/lstm-clm-bbc_news --output_dir runs/ev

Both arms share the architecture (the LM's config), the tokenizer (the LM's), the optimizer, schedule, epochs and
seed; only the initial weights differ. Prints a table and writes it as JSON.
"""

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoConfig

from hf_nlpft.arguments import DataArguments, ModelArguments, OutputArguments
from hf_nlpft.demo import training_arguments
from hf_nlpft.finetune import FinetuneArguments, finetune
from hf_nlpft.pretrain import PretrainArguments, pretrain

LM_OVERRIDES = "cell=lstm,embedding_size=128,hidden_size=256,num_layers=2,dropout=0.1"


def pretrain_lm(output_dir: Path, steps: int) -> Path:
    lm_dir = output_dir / "lm"
    pretrain(
        ModelArguments(arch="rnn", config_overrides=LM_OVERRIDES, tokenizer_vocab_size=8000, lowercase=True),
        DataArguments(dataset_name="bbc_news", block_size=64),
        PretrainArguments(objective="clm"),
        OutputArguments(),
        training_arguments(lm_dir, max_steps=steps, learning_rate=3e-3, eval_strategy="steps", save_strategy="no",
                           eval_steps=max(1, steps // 4)),
    )
    return lm_dir


def classifier_run(
    lm_dir: Path, output_dir: Path, pretrained: bool, fraction: float, epochs: float, max_seq_length: int
) -> dict:
    config = AutoConfig.from_pretrained(lm_dir)
    same_shape = ",".join(
        f"{k}={str(getattr(config, k)).lower()}"
        for k in ("cell", "embedding_size", "hidden_size", "num_layers", "bidirectional")
    )
    behaviour = "classifier_pooling=mean,dropout=0.2"
    model_args = (
        ModelArguments(model_name_or_path=str(lm_dir), config_overrides=behaviour)
        if pretrained
        else ModelArguments(arch="rnn", config_overrides=f"{same_shape},{behaviour}", tokenizer_name=str(lm_dir))
    )
    name = f"{'pretrained' if pretrained else 'scratch'}-{int(fraction * 100)}pct"
    started = time.time()
    metrics = finetune(
        model_args,
        DataArguments(dataset_name="bbc_news", max_seq_length=max_seq_length),
        FinetuneArguments(task="text-classification", train_fraction=fraction),
        OutputArguments(),
        training_arguments(output_dir / name, num_train_epochs=epochs / fraction ** 0.5, learning_rate=5e-3),
    )
    return {
        "init": "pretrained LM" if pretrained else "scratch",
        "labels": f"{int(fraction * 100)}%",
        "train_examples": metrics["train_samples"],
        "test_accuracy": metrics["test_accuracy"],
        "test_f1_macro": metrics["test_f1_macro"],
        "seconds": time.time() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--lm_dir", type=Path, default=None, help="a pretrained bbc_news LM; default: pretrain one")
    parser.add_argument("--pretrain_steps", type=int, default=1500)
    parser.add_argument("--epochs", type=float, default=4, help="epochs at 100%% labels (more for fewer labels)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 1.0])
    parser.add_argument("--max_seq_length", type=int, default=256, help="tokens kept of each article")
    args = parser.parse_args()
    torch.manual_seed(0)
    lm_dir = args.lm_dir or pretrain_lm(args.output_dir, args.pretrain_steps)
    rows = [
        classifier_run(lm_dir, args.output_dir, pretrained, fraction, args.epochs, args.max_seq_length)
        for fraction in args.fractions
        for pretrained in (False, True)
    ]
    header = f"{'init':<14} {'labels':>6} {'train ex.':>9} {'test acc':>9} {'test F1':>8} {'time (s)':>9}"
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        print(f"{row['init']:<14} {row['labels']:>6} {row['train_examples']:>9} {row['test_accuracy']:>9.4f} "
              f"{row['test_f1_macro']:>8.4f} {row['seconds']:>9.0f}")
    (args.output_dir / "evidence.json").write_text(json.dumps({"lm_dir": str(lm_dir), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
