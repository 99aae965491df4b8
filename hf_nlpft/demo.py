"""`hf-nlpft demo`: the main job on built-in data, end to end, in under 10 minutes on 2 CPU cores.

1. Pretrain a small LSTM language model on the `bbc_news` train split (tokenizer trained on the same text).
2. Fine-tune it as a 5-topic classifier on the `bbc_news` train labels (the LM's encoder, mean-pooled, under a
   new head).
3. Evaluate on the test split: metrics, classification report, confusion matrix, ROC curves, model card.
4. Reload both folders through the Auto classes and show a generated continuation and a classified headline.
"""

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments, pipeline

from .arguments import DataArguments, ModelArguments, OutputArguments
from .finetune import FinetuneArguments, finetune
from .pretrain import PretrainArguments, pretrain

DEMO_PROMPT = "the government said"
DEMO_HEADLINE = "Shares in the bank fell sharply after profits missed forecasts"


def training_arguments(output_dir: Path, **overrides) -> TrainingArguments:
    values = dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=32,
        per_device_eval_batch_size=64,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,  # a float below 1 is a share of the total steps
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        logging_strategy="steps",
        logging_steps=20,
        report_to="none",
        seed=42,
        use_cpu=not torch.cuda.is_available(),
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    values.update(overrides)
    return TrainingArguments(**values)


def run_demo(output_dir: Path, pretrain_steps: int, finetune_epochs: float) -> dict:
    lm_dir, classifier_dir = output_dir / "lstm-clm-bbc_news", output_dir / "lstm-classifier-bbc_news"
    started = time.time()
    lm_metrics = pretrain(
        ModelArguments(
            arch="rnn",
            config_overrides="cell=lstm,embedding_size=128,hidden_size=256,num_layers=2,dropout=0.1",
            tokenizer_vocab_size=8000,
            lowercase=True,
        ),
        DataArguments(dataset_name="bbc_news", block_size=64),
        PretrainArguments(objective="clm"),
        OutputArguments(),
        training_arguments(
            lm_dir, max_steps=pretrain_steps, learning_rate=3e-3, eval_strategy="steps", save_strategy="steps",
            eval_steps=max(1, pretrain_steps // 4), save_steps=max(1, pretrain_steps // 2),
        ),
    )
    pretrain_seconds = time.time() - started
    classifier_metrics = finetune(
        ModelArguments(model_name_or_path=str(lm_dir), config_overrides="classifier_pooling=mean,dropout=0.2"),
        DataArguments(dataset_name="bbc_news", max_seq_length=192),
        FinetuneArguments(task="text-classification"),
        OutputArguments(),
        training_arguments(classifier_dir, num_train_epochs=finetune_epochs, learning_rate=5e-3),
    )
    seconds = time.time() - started

    lm = AutoModelForCausalLM.from_pretrained(lm_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(lm_dir)
    prompt = tokenizer(DEMO_PROMPT, return_tensors="pt", add_special_tokens=False)
    generated = lm.generate(**prompt, max_new_tokens=20, do_sample=False, repetition_penalty=1.3)
    classify = pipeline("text-classification", model=str(classifier_dir))
    return {
        "lm_dir": lm_dir,
        "classifier_dir": classifier_dir,
        "lm_metrics": lm_metrics,
        "classifier_metrics": classifier_metrics,
        "generated": tokenizer.decode(generated[0], skip_special_tokens=True),
        "headline": classify(DEMO_HEADLINE)[0],
        "pretrain_seconds": pretrain_seconds,
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hf-nlpft demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, default=None, help="default: runs/demo-<timestamp>")
    parser.add_argument("--pretrain_steps", type=int, default=400, help="LM pretraining steps")
    parser.add_argument("--finetune_epochs", type=float, default=3, help="classifier epochs")
    args = parser.parse_args(argv)
    output_dir = args.output_dir or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    if output_dir.exists() and any(output_dir.iterdir()):
        parser.error(f"--output_dir {output_dir} exists and is not empty; choose a new folder")
    result = run_demo(output_dir, args.pretrain_steps, args.finetune_epochs)
    lm, clf = result["lm_metrics"], result["classifier_metrics"]
    test_metrics = {k: round(v, 4) for k, v in clf.items() if k.startswith("test_") and k.split("_", 1)[1] in (
        "accuracy", "precision_macro", "recall_macro", "f1_macro", "f1_micro", "roc_auc")}
    print()
    print("=" * 78)
    print(f"hf_nlpft demo on bbc_news: {result['seconds']:.0f} s in all ({result['pretrain_seconds']:.0f} s pretraining)")
    print(f"  LM validation perplexity  : {lm['eval_perplexity']:.1f}  "
          f"({lm['train_tokens_per_second']:.0f} training tokens/s)")
    print(f"  LM continuation           : {result['generated']!r}")
    print(f"  classifier test metrics   : {json.dumps(test_metrics)}")
    print(f"  headline -> topic         : {DEMO_HEADLINE!r} -> {result['headline']['label']} "
          f"({result['headline']['score']:.2f})")
    for name, path in [
        ("pretrained LM folder", result["lm_dir"]),
        ("classifier folder", result["classifier_dir"]),
        ("classifier model card", result["classifier_dir"] / "README.md"),
        ("test metrics", result["classifier_dir"] / "test_results.json"),
        ("confusion matrix", result["classifier_dir"] / "confusion_matrix.png"),
        ("ROC curves", result["classifier_dir"] / "roc_curve.png"),
        ("loss curves", result["classifier_dir"] / "loss_curve.png"),
    ]:
        print(f"  {name:<26}: {path.resolve()}")
    print("=" * 78)
    return 0
