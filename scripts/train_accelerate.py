"""A plain Accelerate training loop (no Trainer): a causal LSTM LM on bbc_news, the same code on 1 CPU or N GPUs.

    python scripts/train_accelerate.py --output_dir runs/accelerate-lm --max_steps 200
    accelerate launch --config_file scripts/accelerate/multi_gpu_ddp.yaml scripts/train_accelerate.py ...
    torchrun --nproc_per_node 2 scripts/train_accelerate.py --cpu ...          # 2 CPU processes, DDP over gloo
    python scripts/train_accelerate.py ... --resume_from runs/accelerate-lm/state   # continue after a stop

What each piece does: `Accelerator.prepare` wraps model/optimizer/dataloaders for the launch's topology,
`accelerator.backward` handles mixed precision and gradient sync, `gather_for_metrics` collects evaluation
losses from every process (dropping the padding duplicates of the last batch), and `save_state`/`load_state`
checkpoint model, optimizer, scheduler, RNG states and the dataloader position.
"""

import argparse
import math
from itertools import chain
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, default_data_collator, get_cosine_schedule_with_warmup

import hf_nlpft


def lm_blocks(texts: list[str], tokenizer, block_size: int) -> list[dict]:
    ids = list(chain.from_iterable(tokenizer(texts)["input_ids"]))
    blocks = [ids[i : i + block_size] for i in range(0, len(ids) - block_size + 1, block_size)]
    return [{"input_ids": block, "labels": block} for block in blocks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--max_steps", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--block_size", type=int, default=64)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--mixed_precision", choices=["no", "bf16", "fp16"], default="no")
    parser.add_argument("--cpu", action="store_true", help="force CPU (DDP over gloo under torchrun)")
    parser.add_argument("--resume_from", type=Path, default=None, help="a folder written by save_state")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    accelerator = Accelerator(mixed_precision=args.mixed_precision, cpu=args.cpu)
    set_seed(args.seed)
    corpus = hf_nlpft.load_corpus("bbc_news")
    with accelerator.main_process_first():  # every process trains the same tokenizer deterministically from disk
        tokenizer_dir = args.output_dir / "tokenizer"
        if accelerator.is_main_process and not tokenizer_dir.exists():
            hf_nlpft.train_tokenizer(corpus["train"]["text"], vocab_size=8000, lowercase=True).save_pretrained(tokenizer_dir)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    train = DataLoader(lm_blocks(list(corpus["train"]["text"]), tokenizer, args.block_size), batch_size=args.batch_size,
                       shuffle=True, collate_fn=default_data_collator)
    valid = DataLoader(lm_blocks(list(corpus["validation"]["text"]), tokenizer, args.block_size), batch_size=64,
                       collate_fn=default_data_collator)
    config = hf_nlpft.RnnConfig(vocab_size=len(tokenizer), cell="lstm", embedding_size=128, hidden_size=256,
                                pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id)
    model = hf_nlpft.RnnForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.01)
    scheduler = get_cosine_schedule_with_warmup(optimizer, args.max_steps // 20, args.max_steps)
    model, optimizer, train, valid, scheduler = accelerator.prepare(model, optimizer, train, valid, scheduler)

    step = 0
    if args.resume_from:
        accelerator.load_state(args.resume_from)
        step = int((args.resume_from / "step.txt").read_text())
    model.train()
    while step < args.max_steps:
        # skip_first_batches resumes mid-epoch exactly where the saved state stopped
        epoch_batches = accelerator.skip_first_batches(train, step % len(train)) if args.resume_from else train
        for batch in epoch_batches:
            loss = model(**batch).loss
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step += 1
            if step % 50 == 0:
                accelerator.print(f"step {step}: loss {loss.item():.3f}")
            if step >= args.max_steps:
                break
        args.resume_from = None

    model.eval()
    losses = []
    with torch.no_grad():
        for batch in valid:
            losses.append(accelerator.gather_for_metrics(model(**batch).loss.repeat(len(batch["input_ids"]))))
    eval_loss = torch.cat(losses).mean().item()
    accelerator.print(f"validation loss {eval_loss:.3f}, perplexity {math.exp(eval_loss):.1f}")

    state_dir = args.output_dir / "state"
    accelerator.save_state(state_dir)
    if accelerator.is_main_process:
        (state_dir / "step.txt").write_text(str(step))
    accelerator.wait_for_everyone()
    accelerator.unwrap_model(model).save_pretrained(args.output_dir / "model", is_main_process=accelerator.is_main_process)
    if accelerator.is_main_process:
        tokenizer.save_pretrained(args.output_dir / "model")
        accelerator.print(f"model: {args.output_dir / 'model'}")


if __name__ == "__main__":
    main()
