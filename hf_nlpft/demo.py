"""`hf-nlpft demo`: the main job on built-in data, end to end, in a few minutes on a laptop CPU.

Pretrains a small LSTM language model on the `bbc_news` train split (tokenizer trained on the same text),
saves a Hub-ready folder, reloads it through `AutoModelForCausalLM` and generates a continuation.
"""

import argparse
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

from .arguments import DataArguments, ModelArguments, OutputArguments
from .pretrain import PretrainArguments, pretrain

DEMO_PROMPT = "The government said"


def run_demo(output_dir: Path, max_steps: int, seed: int = 42) -> dict:
    lm_dir = output_dir / "lstm-clm-bbc_news"
    started = time.time()
    metrics = pretrain(
        ModelArguments(
            arch="rnn",
            config_overrides="cell=lstm,embedding_size=128,hidden_size=256,num_layers=2,dropout=0.1",
            tokenizer_model="wordpiece",
            tokenizer_vocab_size=8000,
            lowercase=True,
        ),
        DataArguments(dataset_name="bbc_news", block_size=64),
        PretrainArguments(objective="clm"),
        OutputArguments(),
        TrainingArguments(
            output_dir=str(lm_dir),
            max_steps=max_steps,
            per_device_train_batch_size=32,
            per_device_eval_batch_size=64,
            learning_rate=3e-3,
            warmup_steps=max(1, max_steps // 20),
            lr_scheduler_type="cosine",
            logging_steps=max(1, max_steps // 20),
            eval_strategy="steps",
            eval_steps=max(1, max_steps // 4),
            save_steps=max(1, max_steps // 2),
            save_total_limit=1,
            report_to="none",
            seed=seed,
            use_cpu=not torch.cuda.is_available(),
        ),
    )
    model = AutoModelForCausalLM.from_pretrained(lm_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    prompt = tokenizer(DEMO_PROMPT.lower(), return_tensors="pt", add_special_tokens=False)
    generated = model.generate(**prompt, max_new_tokens=25, do_sample=False, repetition_penalty=1.3)
    continuation = tokenizer.decode(generated[0], skip_special_tokens=True)
    return {"lm_dir": lm_dir, "metrics": metrics, "generated": continuation, "seconds": time.time() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hf-nlpft demo", description=__doc__)
    parser.add_argument("--output_dir", type=Path, default=None, help="default: runs/demo-<timestamp>")
    parser.add_argument("--max_steps", type=int, default=400, help="LM pretraining steps")
    args = parser.parse_args(argv)
    output_dir = args.output_dir or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    if output_dir.exists() and any(output_dir.iterdir()):
        parser.error(f"--output_dir {output_dir} exists and is not empty; choose a new folder")
    result = run_demo(output_dir, args.max_steps)
    metrics = result["metrics"]
    print()
    print("=" * 72)
    print(f"Pretrained LSTM LM on bbc_news in {result['seconds']:.0f} s")
    print(f"  validation perplexity : {metrics['eval_perplexity']:.1f}")
    print(f"  training tokens/s     : {metrics.get('train_tokens_per_second', float('nan')):.0f}")
    print(f"  generated             : {result['generated']!r}")
    print(f"  model folder          : {result['lm_dir'].resolve()}")
    print(f"  model card            : {(result['lm_dir'] / 'README.md').resolve()}")
    print(f"  loss curve            : {(result['lm_dir'] / 'loss_curve.png').resolve()}")
    print("=" * 72)
    return 0
