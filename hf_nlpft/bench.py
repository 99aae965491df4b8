"""`hf-nlpft bench`: the hot paths of this package measured against this machine's own limits.

    hf-nlpft bench --quick                       # every measurement, fewer sizes and steps: under 3 minutes
    hf-nlpft bench --output bench.json           # the full run, under 20 minutes on 2 cores
    hf-nlpft bench --mode smoke --output x.json  # tiny shapes: checks that the suite runs (the tests use it)

Shared machines are noisy, so absolute times are not comparable between runs: every figure is reported as a
ratio against an anchor measured in the same run (the machine's matmul peak, a hand-written PyTorch loop,
`scaled_dot_product_attention`, raw `tokenizers`, ...), with the absolute value beside it for context.

Measurements, one function each (`measure_*`), each returning a dict:

1. matmul      best fp32 and bf16 matmul GFLOP/s: the hardware limit every other figure is read against.
2. lm          `RnnForCausalLM` (LSTM and GRU) LM training tokens/s through the `pretrain` Trainer path vs a
               hand-written loop of the same model, optimizer, schedule and clipping; model FLOP/s over the
               fp32 matmul peak (MFU); the same under bf16 autocast, against a plain-PyTorch LSTM LM whose bf16
               gain shows what the hardware gives.
3. attention   additive attention core (scores -> softmax -> @V), forward + backward, time and peak memory of
               "fused" (the compiled CPU kernel, our default where it builds), "recompute" (chunked tensor ops)
               and "naive" against SDPA; each case in a fresh process (peak RSS).
4. generation  greedy generation with the recurrent state cache vs re-running the prefix (`use_cache=False`),
               and against two floors: reading the weights (at batch 1 every step reads every weight matrix
               once: one 1-row matmul per matrix, back to back) and the per-token cost of generate(), Python
               and kernel calls (the same model 8 wide with a 64-token vocabulary, whose arithmetic is nil).
5. pipeline    tokenize + pack through `pretrain.tokenize_for_lm` (datasets) vs raw `tokenizers.encode_batch`.
6. padding     useful (non-pad) token share and useful tokens/s of bbc_news classification batches, with and
               without length-grouped batching (`LengthGroupedSampler`, as `group_by_length=True` uses).

No figure is asserted anywhere: the table marks each goal of the issue as met or not, and the JSON lists them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import math
import multiprocessing
import os
import platform
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

TOP_LEVEL_FIELDS = (
    "matmul_gflops_fp32",
    "matmul_gflops_bf16",
    "trainer_vs_hand_tokens_ratio",
    "lstm_mfu_fp32",
    "bf16_speedup",
    "generation_cache_speedup",
    "generation_tokens_per_s",
    "pipeline_vs_encode_batch_ratio",
    "padding_useful_token_ratio",
)
ATTENTION_ROW_FIELDS = ("n", "impl", "ms", "peak_mb", "time_vs_sdpa", "memory_vs_sdpa")
MEASUREMENTS = ("matmul", "lm", "attention", "generation", "pipeline", "padding")

# Shapes per mode. "full" follows the issue; "quick" keeps its shapes with fewer repetitions and sizes (under
# 3 minutes on an idle 2-core machine); "smoke" is tiny (under a minute even on a loaded machine: the tests).
FULL_SIZES: dict[str, dict] = {
    "matmul": {"sizes": [1024, 2048, 4096], "reps": 5},
    "lm": {
        "vocab_size": 8000, "embedding_size": 256, "hidden_size": 512, "num_layers": 2,
        "batch_size": 32, "seq_len": 128, "warmup_steps": 3, "timed_steps": 15, "budget_s": 60,
        "bf16_fallback_seq_len": 16,
        "runs": [("lstm", "fp32"), ("lstm", "bf16"), ("gru", "fp32"), ("gru", "bf16")],
    },
    "attention": {
        "batch": 8, "heads": 4, "head_dim": 64, "ns": [128, 256, 512, 1024, 2048], "chunk_size": None,
        "reps": 3, "max_call_s": 5, "case_timeout_s": 360,
    },
    "generation": {
        "vocab_size": 8000, "embedding_size": 512, "hidden_size": 512, "num_layers": 3,
        "prompt_len": 16, "new_tokens": 512, "cache_reps": 3, "no_cache_reps": 1,
    },
    "pipeline": {"corpus": "bbc_news", "vocab_size": 8000, "block_size": 128, "reps": 3},
    "padding": {
        "corpus": "bbc_news", "vocab_size": 8000, "max_seq_length": 256, "batch_size": 32, "timed_batches": 8,
        "budget_s": 90,
        "model": {"embedding_size": 256, "hidden_size": 512, "num_layers": 2, "cell": "lstm"},
    },
}


def _override(base: dict, changes: dict) -> dict:
    """`base` with some fields of some sections replaced (a shallow merge per section)."""
    return {name: {**section, **changes.get(name, {})} for name, section in base.items()}


SIZES: dict[str, dict] = {
    "full": FULL_SIZES,
    "quick": _override(FULL_SIZES, {
        "matmul": {"sizes": [1024, 2048], "reps": 3},
        "lm": {"warmup_steps": 2, "timed_steps": 3, "budget_s": 15,
               "runs": [("lstm", "fp32"), ("lstm", "bf16"), ("gru", "fp32")]},
        "attention": {"ns": [128, 512], "reps": 2, "max_call_s": 3, "case_timeout_s": 120},
        "generation": {"new_tokens": 128, "cache_reps": 2},
        "pipeline": {"reps": 1},
        "padding": {"timed_batches": 3, "budget_s": 20},
    }),
    "smoke": {
        "matmul": {"sizes": [64, 128], "reps": 2},
        "lm": {
            "vocab_size": 300, "embedding_size": 16, "hidden_size": 32, "num_layers": 2,
            "batch_size": 4, "seq_len": 16, "warmup_steps": 1, "timed_steps": 2, "budget_s": 10,
            "bf16_fallback_seq_len": 8,
            "runs": [("lstm", "fp32"), ("lstm", "bf16"), ("gru", "fp32")],
        },
        "attention": {
            "batch": 2, "heads": 2, "head_dim": 8, "ns": [16, 32], "chunk_size": 8,
            "reps": 2, "max_call_s": 3, "case_timeout_s": 60,
        },
        "generation": {
            "vocab_size": 300, "embedding_size": 16, "hidden_size": 32, "num_layers": 2,
            "prompt_len": 4, "new_tokens": 8, "cache_reps": 1, "no_cache_reps": 1,
        },
        "pipeline": {"corpus": None, "vocab_size": 300, "block_size": 32, "reps": 1, "synthetic_texts": 200},
        "padding": {
            "corpus": None, "vocab_size": 300, "max_seq_length": 64, "batch_size": 4, "timed_batches": 2, "budget_s": 10,
            "synthetic_texts": 200,
            "model": {"embedding_size": 16, "hidden_size": 32, "num_layers": 1, "cell": "lstm"},
        },
    },
}

# Goals of the issue, checked in the table and listed in the JSON (never asserted).
TRAINER_VS_HAND_GOAL = 0.97
MFU_GOAL = 0.5
BF16_SPEEDUP_GOAL = 2.4
ATTENTION_GOAL_NS = (512, 1024)
# The attention goals apply to the implementation "auto" picks here: "fused" where the kernel builds, else
# "recompute".
ATTENTION_VS_NAIVE_GOAL = 0.25  # time <= 1/4 of naive
ATTENTION_VS_SDPA_TIME_GOAL = 10.0  # time <= 10x SDPA
ATTENTION_VS_SDPA_MEMORY_FACTOR = 2.0  # peak <= 2x SDPA's + one chunk workspace
GENERATION_SPEEDUP_GOAL = 50.0
GENERATION_TOKENS_PER_S_GOAL = 1000.0
MATMUL_MAX_CALL_S = 1.0  # a matmul call slower than this is measured once, and no larger size is tried
NAIVE_RAM_SHARE = 0.4  # skip naive attention where its B·H·N·N·d tensors would need more of the RAM than this
NAIVE_LIVE_TENSORS = 3  # B·H·N·N·d float32 tensors naive holds at its peak (sum, tanh for backward, a gradient)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------------


def _ratio(value, anchor):
    if value is None or anchor is None or anchor == 0:
        return None
    return value / anchor


def _timed(fn) -> tuple:
    """(fn(), the seconds it took)."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def _total_ram_bytes() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mkldnn_bf16_supported() -> bool | None:
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return None


def machine_facts(threads: int) -> dict:
    import torch
    import transformers

    flags = ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("flags"):
                flags = line
                break
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "avx512_bf16": "avx512_bf16" in flags.split(),
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "mkldnn_bf16_supported": _mkldnn_bf16_supported(),
        "total_ram_gb": round(_total_ram_bytes() / 2**30, 1),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "tokenizers_parallelism": os.environ.get("TOKENIZERS_PARALLELISM"),
    }


@contextlib.contextmanager
def _bench_settings(threads: int):
    """torch threads and quiet Transformers/datasets for the run; the caller's settings come back after."""
    import datasets
    import torch
    from transformers.utils import logging as transformers_logging

    saved_threads = torch.get_num_threads()
    saved_verbosity = (transformers_logging.get_verbosity(), datasets.logging.get_verbosity())
    saved_bars = (transformers_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled())
    torch.set_num_threads(threads)
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    datasets.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        torch.set_num_threads(saved_threads)
        transformers_logging.set_verbosity(saved_verbosity[0])
        datasets.logging.set_verbosity(saved_verbosity[1])
        if saved_bars[0]:
            transformers_logging.enable_progress_bar()
        if saved_bars[1]:
            datasets.enable_progress_bars()


# ---------------------------------------------------------------------------------------------------------------
# 1. Hardware limit: matmul GFLOP/s
# ---------------------------------------------------------------------------------------------------------------


def measure_matmul(sizes: dict) -> dict:
    """Best fp32 and bf16 GFLOP/s of square matmuls: the peak the model FLOP/s are read against.

    Sizes go up until one call takes over a second: on CPUs without native bf16 (no AVX512_BF16/AMX) bf16
    matmuls are emulated and tens of times slower than fp32, and a 4096² product would take minutes.
    """
    import torch

    torch.manual_seed(0)
    result = {"rows": []}
    best = {}
    for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        best[dtype_name] = 0.0
        for n in sizes["sizes"]:
            a = torch.randn(n, n).to(dtype)
            b = torch.randn(n, n).to(dtype)
            out = torch.empty(n, n, dtype=dtype)
            start = time.perf_counter()
            torch.mm(a, b, out=out)  # warm up (kernel selection, page faults); timed in case it is the only call
            times = [time.perf_counter() - start]
            slow = times[0] > MATMUL_MAX_CALL_S
            if not slow:
                times = []
                for _ in range(sizes["reps"]):
                    start = time.perf_counter()
                    torch.mm(a, b, out=out)
                    times.append(time.perf_counter() - start)
            gflops = 2 * n**3 / min(times) / 1e9
            result["rows"].append({"dtype": dtype_name, "n": n, "ms": min(times) * 1e3, "gflops": gflops,
                                   "reps": len(times)})
            best[dtype_name] = max(best[dtype_name], gflops)
            del a, b, out
            if slow:
                break
    result["gflops_fp32"] = best["fp32"]
    result["gflops_bf16"] = best["bf16"]
    result["bf16_vs_fp32"] = _ratio(best["bf16"], best["fp32"])
    return result


# ---------------------------------------------------------------------------------------------------------------
# 2-3. LM training throughput: the pretrain Trainer path vs a hand-written loop
# ---------------------------------------------------------------------------------------------------------------


def rnn_lm_flops_per_token(cell: str, vocab_size: int, embedding_size: int, hidden_size: int, num_layers: int,
                           bidirectional: bool = False, training: bool = True) -> float:
    """Matmul FLOPs per token of `RnnForCausalLM` (forward; x3 for training: forward + two backward matmuls).

    Recurrent layer: 2·G·H·(I+H) per token per direction, G = 4 gates (LSTM), 3 (GRU), 1 (Elman). LM head:
    dense (output_size -> embedding) and decoder (embedding -> vocab). Embedding lookups, elementwise gate
    math, norms and the softmax are not counted (they are not matmuls).
    """
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    directions = 2 if bidirectional else 1
    output_size = hidden_size * directions
    flops = 0.0
    input_size = embedding_size
    for _ in range(num_layers):
        flops += directions * 2 * gates * hidden_size * (input_size + hidden_size)
        input_size = output_size
    flops += 2 * output_size * embedding_size + 2 * embedding_size * vocab_size
    return flops * (3 if training else 1)


def _lm_config(sizes: dict, cell: str):
    from .models.rnn import RnnConfig

    return RnnConfig(
        vocab_size=sizes["vocab_size"], embedding_size=sizes["embedding_size"], hidden_size=sizes["hidden_size"],
        num_layers=sizes["num_layers"], cell=cell, bidirectional=False,
    )


def _lm_blocks(sizes: dict, count: int, seed: int = 0):
    """Random token blocks (ids above the 5 special tokens), as `tokenize_for_lm` would pack them."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.randint(5, sizes["vocab_size"], (count, sizes["seq_len"]), generator=generator)


def _steady_tokens_per_s(step_ends: list[float], start: float, warmup: int, tokens_per_step: int) -> dict:
    """Throughput over the steps after the warm-up ones, from a step's end to the last step's end (every
    overhead between steps included). A run cut short by its time budget keeps at least one timed step."""
    warmup = min(warmup, len(step_ends) - 1)
    first = step_ends[warmup - 1] if warmup > 0 else start
    steps = len(step_ends) - warmup
    seconds = step_ends[-1] - first
    return {"steps": steps, "warmup_steps": warmup, "step_ms": seconds / steps * 1e3,
            "tokens_per_s": steps * tokens_per_step / seconds}


def _out_of_budget(sizes: dict, start: float, steps_done: int) -> bool:
    """Stop a run early once it has used its time budget and has a warm-up and a timed step."""
    return steps_done >= 2 and time.perf_counter() - start > sizes["budget_s"]


def _optimizer_description(optimizer) -> dict:
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps it in an AcceleratedOptimizer
    defaults = {k: v for k, v in inner.defaults.items() if isinstance(v, (bool, int, float, str, tuple, type(None)))}
    return {
        "class": f"{type(inner).__module__}.{type(inner).__name__}",
        "defaults": defaults,
        "groups": [{"params": len(g["params"]), "weight_decay": g["weight_decay"]} for g in inner.param_groups],
    }


def _trainer_run(sizes: dict, cell: str, precision: str, output_dir: str) -> dict:
    """Train through Transformers' Trainer the way `pretrain.py` builds it; time the steady-state steps."""
    import datasets
    from transformers import (
        AutoModelForCausalLM,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )

    total = sizes["warmup_steps"] + sizes["timed_steps"]
    batch_size, seq_len = sizes["batch_size"], sizes["seq_len"]
    blocks = _lm_blocks(sizes, total * batch_size).tolist()
    # The columns tokenize_for_lm leaves for clm: input_ids, attention_mask (all ones in packed blocks), labels.
    train_dataset = datasets.Dataset.from_dict(
        {"input_ids": blocks, "attention_mask": [[1] * seq_len for _ in blocks], "labels": blocks}
    )
    # pretrain.py's TrainingArguments are the command line's: Transformers' defaults. Only what a benchmark must
    # pin is set: the length of the run, no checkpoints or trackers, no progress bar, and the CPU even where a
    # GPU exists (the hand loop runs there too).
    args = TrainingArguments(
        output_dir=output_dir, per_device_train_batch_size=batch_size, max_steps=total, save_strategy="no",
        report_to="none", disable_tqdm=True, use_cpu=True, bf16=precision == "bf16", seed=42,
    )
    set_seed(args.seed)
    model = AutoModelForCausalLM.from_config(_lm_config(sizes, cell))

    class StepTimes(TrainerCallback):
        def __init__(self):
            self.begins, self.ends = [], []

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()

        def on_step_begin(self, args, state, control, **kwargs):
            self.begins.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())
            if _out_of_budget(sizes, self.start, len(self.ends)):
                control.should_training_stop = True

    timer = StepTimes()
    trainer = Trainer(
        model=model, args=args, train_dataset=train_dataset, data_collator=default_data_collator, callbacks=[timer]
    )
    trainer.remove_callback(PrinterCallback)  # it would print the final metrics dict into the bench's output
    trainer.train()
    result = _steady_tokens_per_s(timer.ends, timer.start, sizes["warmup_steps"], batch_size * seq_len)
    warmup = result["warmup_steps"]
    in_step = sum(end - begin for begin, end in zip(timer.begins[warmup:], timer.ends[warmup:]))
    span = timer.ends[-1] - (timer.ends[warmup - 1] if warmup else timer.start)
    result["outside_step_share"] = 1 - in_step / span  # data loading, callbacks, logging between the steps
    result["optimizer"] = _optimizer_description(trainer.optimizer)
    result["lr_scheduler"] = str(getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type))
    result["max_grad_norm"] = args.max_grad_norm
    result["_args"] = args
    result["_decay_names"] = trainer.get_decay_parameter_names
    return result


def _build_like_trainer_optimizer(model, trainer_result: dict):
    """torch.optim.AdamW configured as the Trainer's optimizer was: same class, flags and weight-decay groups."""
    import torch

    description = trainer_result["optimizer"]
    if description["class"] != "torch.optim.adamw.AdamW":
        raise RuntimeError(f"The Trainer's optimizer is {description['class']}, not torch.optim.AdamW")
    defaults = dict(description["defaults"])
    decay_names = set(trainer_result["_decay_names"](model))
    groups = [
        {"params": [p for n, p in model.named_parameters() if n in decay_names and p.requires_grad],
         "weight_decay": description["groups"][0]["weight_decay"]},
        {"params": [p for n, p in model.named_parameters() if n not in decay_names and p.requires_grad],
         "weight_decay": 0.0},
    ]
    accepted = ("lr", "betas", "eps", "weight_decay", "amsgrad", "foreach", "maximize", "capturable",
                "differentiable", "fused")
    return torch.optim.AdamW(groups, **{k: defaults[k] for k in accepted if k in defaults})


def _hand_loop_run(model, sizes: dict, precision: str, trainer_result: dict, forward) -> dict:
    """A plain PyTorch training loop: same optimizer, lr schedule and clipping as the Trainer's."""
    import torch
    from transformers import get_scheduler

    args = trainer_result["_args"]
    total = sizes["warmup_steps"] + sizes["timed_steps"]
    batch_size, seq_len = sizes["batch_size"], sizes["seq_len"]
    blocks = _lm_blocks(sizes, total * batch_size)
    mask = torch.ones(batch_size, seq_len, dtype=torch.long)
    batches = [blocks[i * batch_size : (i + 1) * batch_size] for i in range(total)]
    optimizer = _build_like_trainer_optimizer(model, trainer_result)
    mirrored, reference = _optimizer_description(optimizer), trainer_result["optimizer"]
    same_optimizer = (mirrored["class"], mirrored["defaults"], [g["weight_decay"] for g in mirrored["groups"]]) == (
        reference["class"], reference["defaults"], [g["weight_decay"] for g in reference["groups"]])
    scheduler = get_scheduler(
        args.lr_scheduler_type, optimizer, num_warmup_steps=args.get_warmup_steps(total), num_training_steps=total
    )

    def autocast():  # what the Trainer's bf16=True does on CPU: autocast the forward pass (and the loss)
        return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

    model.train()
    step_ends = []
    start = time.perf_counter()
    for ids in batches:
        with autocast():
            loss = forward(model, ids, mask)
        loss.backward()
        if args.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        optimizer.step()
        scheduler.step()
        model.zero_grad(set_to_none=True)
        step_ends.append(time.perf_counter())
        if _out_of_budget(sizes, start, len(step_ends)):
            break
    result = _steady_tokens_per_s(step_ends, start, sizes["warmup_steps"], batch_size * seq_len)
    result["same_optimizer_as_trainer"] = same_optimizer
    return result


def _plain_lm(sizes: dict, cell: str):
    """The same network in plain PyTorch (one multi-layer nn.LSTM/GRU, autocast reaches its kernel)."""
    import torch
    from torch import nn

    class PlainRnnLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = nn.Embedding(sizes["vocab_size"], sizes["embedding_size"])
            self.dropout = nn.Dropout(0.1)
            module = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
            self.rnn = module(sizes["embedding_size"], sizes["hidden_size"], sizes["num_layers"], batch_first=True,
                              dropout=0.1)
            self.dense = nn.Linear(sizes["hidden_size"], sizes["embedding_size"])
            self.activation = nn.GELU()
            self.layer_norm = nn.LayerNorm(sizes["embedding_size"])
            self.decoder = nn.Linear(sizes["embedding_size"], sizes["vocab_size"])
            self.decoder.weight = self.embeddings.weight

        def forward(self, input_ids, labels):
            hidden, _ = self.rnn(self.dropout(self.embeddings(input_ids)))
            logits = self.decoder(self.layer_norm(self.activation(self.dense(self.dropout(hidden)))))
            return torch.nn.functional.cross_entropy(
                logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1)
            )

    torch.manual_seed(42)
    return PlainRnnLM()


def bf16_is_native(matmul: dict | None) -> bool:
    """Whether this CPU runs bf16 matmuls natively (faster than fp32), from the measured peaks if there are any."""
    if matmul and matmul.get("gflops_bf16") and matmul.get("gflops_fp32"):
        return matmul["gflops_bf16"] >= matmul["gflops_fp32"]
    return bool(_mkldnn_bf16_supported())


def lm_run_plan(sizes: dict, bf16_native: bool) -> list[tuple[str, str, int]]:
    """(cell, precision, seq_len) of every LM run.

    With emulated bf16 (tens of times slower than fp32) a bf16 step at the full shape takes about a minute, so
    the bf16 runs and a second fp32 run of the same cell use `bf16_fallback_seq_len`: the speedup then compares
    the two precisions at one shape (batch and layer widths unchanged).
    """
    plan = []
    for cell, precision in sizes["runs"]:
        if precision == "bf16" and not bf16_native:
            short = sizes["bf16_fallback_seq_len"]
            plan += [(cell, "fp32", short), (cell, "bf16", short)]
        else:
            plan.append((cell, precision, sizes["seq_len"]))
    return list(dict.fromkeys(plan))


def measure_lm(sizes: dict, matmul: dict | None) -> dict:
    """Tokens/s of RnnForCausalLM training through the Trainer vs a hand loop; MFU; the bf16 gain."""
    from transformers import set_seed

    from .models.rnn import RnnForCausalLM

    peaks = {"fp32": (matmul or {}).get("gflops_fp32"), "bf16": (matmul or {}).get("gflops_bf16")}
    native = bf16_is_native(matmul)
    rows, optimizer, plain_errors = [], None, {}
    with tempfile.TemporaryDirectory(prefix="hf-nlpft-bench-") as output_dir:
        for cell, precision, seq_len in lm_run_plan(sizes, native):
            run_sizes = {**sizes, "seq_len": seq_len}
            flops = rnn_lm_flops_per_token(cell, sizes["vocab_size"], sizes["embedding_size"], sizes["hidden_size"],
                                           sizes["num_layers"])
            name = f"{cell} {precision} {sizes['batch_size']}x{seq_len}"
            log(f"  lm {name}: Trainer path")
            trainer_result = _trainer_run(run_sizes, cell, precision, output_dir)
            log(f"  lm {name}: hand loop")
            set_seed(trainer_result["_args"].seed)
            model = RnnForCausalLM(_lm_config(run_sizes, cell))
            hand = _hand_loop_run(
                model, run_sizes, precision, trainer_result,
                lambda m, ids, mask: m(input_ids=ids, attention_mask=mask, labels=ids).loss,
            )
            del model
            paths = [("trainer", trainer_result), ("hand", hand)]
            if cell == "lstm":  # the plain-PyTorch reference: what bf16 autocast gives an nn.LSTM LM here
                log(f"  lm {name}: plain PyTorch reference")
                try:
                    plain = _hand_loop_run(_plain_lm(run_sizes, cell), run_sizes, precision, trainer_result,
                                           lambda m, ids, mask: m(ids, ids))
                    paths.append(("plain", plain))
                except RuntimeError as err:  # oneDNN has no bf16 LSTM primitive on CPUs without AVX-512
                    plain_errors[name] = str(err).splitlines()[0][:200]
                    log(f"  lm {name}: plain PyTorch reference cannot run here: {plain_errors[name]}")
            for path, result in paths:
                achieved = flops * result["tokens_per_s"]
                rows.append({
                    "cell": cell, "precision": precision, "path": path, "batch_size": sizes["batch_size"],
                    "seq_len": seq_len, "tokens_per_s": result["tokens_per_s"], "step_ms": result["step_ms"],
                    "steps": result["steps"], "model_gflops_per_s": achieved / 1e9,
                    "mfu_fp32_peak": _ratio(achieved / 1e9, peaks["fp32"]),
                    "mfu_own_peak": _ratio(achieved / 1e9, peaks[precision]),
                    **({"outside_step_share": result["outside_step_share"]} if path == "trainer" else
                       {"same_optimizer_as_trainer": result["same_optimizer_as_trainer"]}),
                })
            optimizer = trainer_result["optimizer"]
            gc.collect()

    def tokens(cell, precision, path, seq_len):
        return next((r["tokens_per_s"] for r in rows if (r["cell"], r["precision"], r["path"], r["seq_len"]) ==
                     (cell, precision, path, seq_len)), None)

    full = sizes["seq_len"]
    summary = {}
    for cell in ("lstm", "gru"):
        bf16_seq = next((r["seq_len"] for r in rows if (r["cell"], r["precision"]) == (cell, "bf16")), full)
        summary[cell] = {
            "trainer_vs_hand": _ratio(tokens(cell, "fp32", "trainer", full), tokens(cell, "fp32", "hand", full)),
            "trainer_vs_hand_bf16": _ratio(tokens(cell, "bf16", "trainer", bf16_seq),
                                           tokens(cell, "bf16", "hand", bf16_seq)),
            "bf16_seq_len": bf16_seq,
            **{f"bf16_speedup_{path}": _ratio(tokens(cell, "bf16", path, bf16_seq), tokens(cell, "fp32", path, bf16_seq))
               for path in ("trainer", "hand", "plain")},
        }
    lstm_trainer = next((r for r in rows if (r["cell"], r["precision"], r["path"], r["seq_len"]) ==
                         ("lstm", "fp32", "trainer", full)), {})
    return {
        "sizes": {k: v for k, v in sizes.items() if k != "runs"},
        "bf16_native": native,
        "flops_per_token_training": {cell: rnn_lm_flops_per_token(
            cell, sizes["vocab_size"], sizes["embedding_size"], sizes["hidden_size"], sizes["num_layers"])
            for cell in ("lstm", "gru")},
        "optimizer": optimizer,
        "rows": rows,
        "plain_reference_errors": plain_errors,
        "summary": summary,
        "trainer_vs_hand_tokens_ratio": summary["lstm"]["trainer_vs_hand"],
        "lstm_mfu_fp32": lstm_trainer.get("mfu_fp32_peak"),
        "bf16_speedup": summary["lstm"]["bf16_speedup_trainer"],
    }


# ---------------------------------------------------------------------------------------------------------------
# 4. Additive attention: time and peak memory, one fresh process per case
# ---------------------------------------------------------------------------------------------------------------


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process to its current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _attention_case(case: dict) -> dict:
    """Run one (n, impl) case in this (fresh) process: peak RSS of the first full-size call, then timed calls.

    A tiny call of the same implementation goes first, so that one-time setup (thread pool, oneDNN and autograd
    state, a few MB) is neither in the peak nor in the times.
    """
    import resource

    import torch
    import torch.nn.functional as F

    from .models.additive.modeling_nlpft_additive import additive_scores

    torch.set_num_threads(case["threads"])
    torch.manual_seed(0)

    def inputs(n):
        shape = (case["batch"], case["heads"], n, case["head_dim"])
        q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))
        score_vector = (0.1 * torch.randn(case["heads"], case["head_dim"])).requires_grad_()
        return q, k, v, score_vector, torch.randn(shape)

    def step(q, k, v, score_vector, grad_out):
        if case["impl"] == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            scores = additive_scores(q, k, score_vector, case["chunk_size"], False, case["impl"])
            out = torch.softmax(scores, dim=-1) @ v
        out.backward(grad_out)
        for leaf in (q, k, v, score_vector):
            leaf.grad = None

    step(*inputs(min(case["n"], 8)))
    tensors = inputs(case["n"])
    gc.collect()
    before_kib = _rss_kib()
    reset = _reset_peak_rss()
    baseline_kib = before_kib if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    step(*tensors)
    times = [time.perf_counter() - start]
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(case["reps"] - 1):
        if times[0] > case["max_call_s"]:  # tens of seconds per call (n=2048): the one measured call is enough
            break
        start = time.perf_counter()
        step(*tensors)
        times.append(time.perf_counter() - start)
    timed = times[1:] or times  # the first full-size call may still pay page faults: excluded when there are more
    return {
        "ms": min(timed) * 1e3,
        "peak_mb": max(peak_kib - baseline_kib, 0) * 1024 / 1e6,
        "reps": len(timed),
        "peak_reset": reset,
    }


def _attention_worker(connection, case: dict) -> None:
    try:
        connection.send(_attention_case(case))
    except BaseException as err:  # MemoryError, "can't allocate memory" RuntimeError, ...
        connection.send({"error": f"{type(err).__name__}: {str(err)[:300]}"})
    finally:
        connection.close()


def _run_isolated(context, case: dict, timeout_s: float) -> dict:
    from hf_nlpft import bench  # by its importable name, also when this file runs as __main__

    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=bench._attention_worker, args=(sender, case), daemon=True)
    process.start()
    sender.close()
    try:
        if receiver.poll(timeout_s):
            result = receiver.recv()
        else:
            result = {"error": f"timed out after {timeout_s:.0f} s"}
    except EOFError:  # died without a word: killed for memory, most likely
        process.join(5)
        result = {"error": f"worker died (exit code {process.exitcode})"}
    finally:
        receiver.close()
        if process.is_alive():
            process.terminate()
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()
    return result


def _stop_forkserver() -> None:
    """Stop the forkserver (it holds torch and transformers in memory); a later use starts a new one."""
    from multiprocessing import forkserver

    with contextlib.suppress(Exception):
        forkserver._forkserver._stop()  # private, but the only way; harmless if it changes


def measure_attention(sizes: dict, threads: int) -> dict:
    """Forward + backward of the attention core per (n, impl), each in a fresh process started by a forkserver."""
    from .models.additive import AdditiveAttentionConfig
    from .models.additive.modeling_nlpft_additive import fused_cpu_kernel, fused_kernel_unavailable_reason

    default_chunk = AdditiveAttentionConfig().attention_chunk_size
    # Build (or load) the kernel once here, so that no timed case pays for compiling it.
    fused_unavailable = None if fused_cpu_kernel() is not None else fused_kernel_unavailable_reason()
    chunk_size = sizes["chunk_size"] or default_chunk
    batch, heads, head_dim = sizes["batch"], sizes["heads"], sizes["head_dim"]
    ram = _total_ram_bytes()
    # A forkserver that has imported torch and the model once forks a clean process per case: fresh peak RSS,
    # no OpenMP state inherited from this (already computing) process, no import cost per case.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch", "hf_nlpft.models.additive.modeling_nlpft_additive", "hf_nlpft.bench"])
    rows = []
    try:
        for n in sizes["ns"]:
            for impl in ("sdpa", "fused", "recompute", "naive"):
                row = {"n": n, "impl": impl, "ms": None, "peak_mb": None, "time_vs_sdpa": None, "memory_vs_sdpa": None}
                if impl == "recompute":
                    row["chunk_size"] = chunk_size
                if impl == "fused" and fused_unavailable:
                    row["skipped"] = f"kernel unavailable: {fused_unavailable}"
                    rows.append(row)
                    continue
                element_work = batch * heads * n * n * head_dim
                if impl == "naive":
                    needs = NAIVE_LIVE_TENSORS * element_work * 4
                    if needs > NAIVE_RAM_SHARE * ram:
                        row["skipped"] = f"needs ~{needs / 1e9:.0f} GB"
                        log(f"  attention n={n} naive: skipped ({row['skipped']}, RAM {ram / 1e9:.0f} GB)")
                        rows.append(row)
                        continue
                log(f"  attention n={n} {impl}")
                case = {"n": n, "impl": impl, "batch": batch, "heads": heads, "head_dim": head_dim,
                        "chunk_size": chunk_size, "reps": sizes["reps"], "max_call_s": sizes["max_call_s"],
                        "threads": threads}
                row.update(_run_isolated(context, case, sizes["case_timeout_s"]))
                rows.append(row)
    finally:
        _stop_forkserver()
    for row in rows:
        sdpa = next((r for r in rows if r["n"] == row["n"] and r["impl"] == "sdpa"), None)
        if sdpa is not None:
            row["time_vs_sdpa"] = _ratio(row["ms"], sdpa["ms"])
            row["memory_vs_sdpa"] = _ratio(row["peak_mb"], sdpa["peak_mb"]) if (sdpa["peak_mb"] or 0) > 0 else None
    return {
        "batch": batch, "heads": heads, "head_dim": head_dim, "chunk_size": chunk_size,
        "default_impl": "recompute" if fused_unavailable else "fused",
        "chunk_workspace_mb": {n: batch * heads * min(chunk_size, n) * n * head_dim * 4 / 1e6 for n in sizes["ns"]},
        "rows": rows,
    }


# ---------------------------------------------------------------------------------------------------------------
# 5. Recurrent generation: state cache vs re-running the prefix
# ---------------------------------------------------------------------------------------------------------------


def _step_weights(model) -> list:
    """Every matrix one cached step multiplies by: the recurrent layers', the LM head's and the (tied) decoder."""
    weights = {id(p): p for name, p in model.named_parameters() if p.dim() == 2 and "embeddings" not in name}
    decoder = model.get_output_embeddings().weight
    weights[id(decoder)] = decoder
    return list(weights.values())


def _weight_stream_floor_s(model, reps: int = 50) -> float:
    """Best time of a 1-row matmul per step weight, back to back: reading the weights is all a step must do."""
    import torch

    weights = _step_weights(model)
    rows = [torch.randn(1, w.shape[1]) for w in weights]
    def read_every_weight():
        for row, weight in zip(rows, weights):
            torch.mm(row, weight.t())

    with torch.inference_mode():
        times = [_timed(read_every_weight)[1] for _ in range(reps)]
    return min(times[5:] or times)  # the first passes warm the caches and the thread pool


def measure_generation(sizes: dict) -> dict:
    import torch

    from .models.rnn import RnnConfig, RnnForCausalLM

    torch.manual_seed(0)
    config = RnnConfig(
        vocab_size=sizes["vocab_size"], embedding_size=sizes["embedding_size"], hidden_size=sizes["hidden_size"],
        num_layers=sizes["num_layers"], cell="lstm",
    )
    model = RnnForCausalLM(config).eval()
    # The same depth and cell, 8 wide with 64 tokens: what a step costs when its arithmetic is nil.
    skeleton = RnnForCausalLM(
        RnnConfig(vocab_size=64, embedding_size=8, hidden_size=8, num_layers=sizes["num_layers"], cell="lstm")
    ).eval()
    prompt = torch.randint(5, 64, (1, sizes["prompt_len"]))
    new_tokens = sizes["new_tokens"]

    def generate(use_cache: bool, tokens: int, lm=model):
        with torch.inference_mode():
            return lm.generate(
                prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=tokens,
                min_new_tokens=tokens, use_cache=use_cache, pad_token_id=config.pad_token_id,
            )

    generate(True, 4)  # warm up both paths
    generate(False, 4)
    step_floor_s = _weight_stream_floor_s(model)
    generate(True, 4, skeleton)
    skeleton_runs = [_timed(lambda: generate(True, new_tokens, skeleton)) for _ in range(sizes["cache_reps"])]
    overhead_s = min(seconds for _, seconds in skeleton_runs) / new_tokens
    timings = {}
    outputs = {}
    for use_cache, reps in ((True, sizes["cache_reps"]), (False, sizes["no_cache_reps"])):
        runs = [_timed(lambda cache=use_cache: generate(cache, new_tokens)) for _ in range(reps)]
        outputs[use_cache] = runs[-1][0]
        timings[use_cache] = min(seconds for _, seconds in runs)
    generated = outputs[True].shape[1] - prompt.shape[1]
    return {
        "model": {"cell": "lstm", "vocab_size": config.vocab_size, "embedding_size": config.embedding_size,
                  "hidden_size": config.hidden_size, "num_layers": config.num_layers,
                  "parameters": model.num_parameters()},
        "prompt_len": sizes["prompt_len"],
        "new_tokens": generated,
        "cache_s": timings[True],
        "no_cache_s": timings[False],
        "generation_tokens_per_s": generated / timings[True],
        "no_cache_tokens_per_s": generated / timings[False],
        "generation_cache_speedup": timings[False] / timings[True],
        "weight_stream_mb_per_token": sum(w.numel() * w.element_size() for w in _step_weights(model)) / 1e6,
        "weight_stream_floor_ms_per_token": step_floor_s * 1e3,
        "weight_stream_bound_tokens_per_s": 1 / step_floor_s,
        "tokens_per_s_vs_weight_stream_bound": generated / timings[True] * step_floor_s,
        "step_overhead_ms_per_token": overhead_s * 1e3,
        "combined_bound_tokens_per_s": 1 / (step_floor_s + overhead_s),
        "tokens_per_s_vs_combined_bound": generated / timings[True] * (step_floor_s + overhead_s),
        "outputs_match": bool(torch.equal(outputs[True], outputs[False])),
    }


# ---------------------------------------------------------------------------------------------------------------
# Shared data for 6 and 7: bbc_news texts (or generated text) and a tokenizer trained on them
# ---------------------------------------------------------------------------------------------------------------


def synthetic_texts(count: int, seed: int = 0) -> list[str]:
    """Generated texts: Zipf-distributed pseudo-words, lengths spread widely (3 to 900 words, median ~55)."""
    rng = random.Random(seed)
    syllables = ["ka", "to", "ri", "ne", "su", "mo", "la", "pe", "di", "gu", "an", "or", "is", "et", "um"]
    vocabulary = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(3000)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    texts = []
    for _ in range(count):
        length = max(3, min(900, int(rng.lognormvariate(4.0, 1.0))))
        words = rng.choices(vocabulary, weights, k=length)
        texts.append(" ".join(words[i] + ("." if i % 17 == 16 else "") for i in range(length)))
    return texts


_DATA_CACHE: dict = {}


def _corpus(name: str | None, synthetic_count: int) -> dict:
    """Train texts and labels of `name` (bbc_news) when installed, else generated ones; cached per run."""
    key = ("corpus", name, synthetic_count)
    if key not in _DATA_CACHE:
        source, texts, labels = None, None, None
        if name:
            try:
                from .data.corpora import load_corpus

                train = load_corpus(name)["train"]
                texts, labels, source = list(train["text"]), list(train["label"]), f"{name} train"
            except Exception as err:  # the corpora extra is missing: generated text keeps the suite running
                log(f"  {name} unavailable ({type(err).__name__}: {err}); using generated text")
        if texts is None:
            count = synthetic_count or 2000
            texts = synthetic_texts(count)
            labels = [i % 5 for i in range(count)]
            source = f"generated ({count} texts)"
        _DATA_CACHE[key] = {"texts": texts, "labels": labels, "source": source}
    return _DATA_CACHE[key]


def _tokenizer(corpus: dict, vocab_size: int):
    key = ("tokenizer", corpus["source"], vocab_size)
    if key not in _DATA_CACHE:
        from .tokenization import train_tokenizer

        _DATA_CACHE[key] = train_tokenizer(corpus["texts"], vocab_size=vocab_size, model_max_length=1_000_000)
    return _DATA_CACHE[key]


# ---------------------------------------------------------------------------------------------------------------
# 6. Data pipeline: tokenize + pack through datasets vs raw tokenizers
# ---------------------------------------------------------------------------------------------------------------


def measure_pipeline(sizes: dict) -> dict:
    import datasets
    from transformers import TrainingArguments

    from .arguments import DataArguments
    from .pretrain import tokenize_for_lm

    corpus = _corpus(sizes["corpus"], sizes.get("synthetic_texts", 0))
    tokenizer = _tokenizer(corpus, sizes["vocab_size"])
    texts = corpus["texts"]
    raw = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": texts})})
    data_args = DataArguments(block_size=sizes["block_size"], overwrite_cache=True)
    backend = tokenizer.backend_tokenizer

    encode_times, pipeline_times = [], []
    token_count = blocks = None
    with tempfile.TemporaryDirectory(prefix="hf-nlpft-bench-") as output_dir:
        training_args = TrainingArguments(output_dir=output_dir, report_to="none", use_cpu=True)
        for _ in range(sizes["reps"]):
            encodings, seconds = _timed(lambda: backend.encode_batch(texts))
            encode_times.append(seconds)
            token_count = sum(len(encoding.ids) for encoding in encodings)
            del encodings
            packed, seconds = _timed(lambda: tokenize_for_lm(raw, tokenizer, "text", data_args, training_args, "clm"))
            pipeline_times.append(seconds)
            blocks = len(packed["train"])
            del packed
    encode_tps = token_count / min(encode_times)
    pipeline_tps = token_count / min(pipeline_times)
    return {
        "corpus": corpus["source"],
        "texts": len(texts),
        "characters": sum(map(len, texts)),
        "tokens": token_count,
        "blocks": blocks,
        "block_size": sizes["block_size"],
        "encode_batch_tokens_per_s": encode_tps,
        "pipeline_tokens_per_s": pipeline_tps,
        "pipeline_vs_encode_batch_ratio": _ratio(pipeline_tps, encode_tps),
    }


# ---------------------------------------------------------------------------------------------------------------
# 7. Padding: useful-token share and throughput with and without length-grouped batches
# ---------------------------------------------------------------------------------------------------------------


def measure_padding(sizes: dict) -> dict:
    import torch
    from torch.utils.data import RandomSampler
    from transformers import DataCollatorWithPadding
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from .models.rnn import RnnConfig, RnnForSequenceClassification

    corpus = _corpus(sizes["corpus"], sizes.get("synthetic_texts", 0))
    tokenizer = _tokenizer(corpus, sizes["vocab_size"])
    encoded = tokenizer(corpus["texts"], truncation=True, max_length=sizes["max_seq_length"])
    features = [
        {"input_ids": ids, "attention_mask": mask, "labels": label}
        for ids, mask, label in zip(encoded["input_ids"], encoded["attention_mask"], corpus["labels"])
    ]
    lengths = [len(f["input_ids"]) for f in features]
    batch_size = sizes["batch_size"]

    def batches_of(order: list[int]) -> list[list[int]]:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]

    # The orders the Trainer's dataloader would draw: RandomSampler, or LengthGroupedSampler (group_by_length).
    orders = {
        "random": batches_of(list(RandomSampler(features, generator=torch.Generator().manual_seed(42)))),
        "grouped": batches_of(list(LengthGroupedSampler(
            batch_size, lengths=lengths, generator=torch.Generator().manual_seed(42)))),
    }
    collator = DataCollatorWithPadding(tokenizer)
    torch.manual_seed(0)
    config = RnnConfig(vocab_size=len(tokenizer), num_labels=5, pad_token_id=tokenizer.pad_token_id,
                       **sizes["model"])
    model = RnnForSequenceClassification(config).train()
    rng = random.Random(0)
    result = {"corpus": corpus["source"], "examples": len(features), "batch_size": batch_size,
              "max_seq_length": sizes["max_seq_length"], "model": dict(sizes["model"]),
              "mean_length": sum(lengths) / len(lengths)}
    for name, batches in orders.items():
        useful = sum(lengths)
        slots = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
        # A batch with any padding goes through pack_padded_sequence; one without, the plain fused kernel.
        padded = sum(len({lengths[i] for i in batch}) > 1 for batch in batches)
        timed = rng.sample(batches, min(sizes["timed_batches"], len(batches)))
        # Warm-up on two examples of the first timed batch, its shortest and longest: the same kernel path.
        by_length = sorted(timed[0], key=lengths.__getitem__)
        model(**collator([features[by_length[0]], features[by_length[-1]]])).loss.backward()
        model.zero_grad(set_to_none=True)
        elapsed, timed_useful, timed_slots, done = 0.0, 0, 0, 0
        for batch in timed:
            inputs = collator([features[i] for i in batch])
            start = time.perf_counter()
            model(**inputs).loss.backward()
            model.zero_grad(set_to_none=True)
            elapsed += time.perf_counter() - start
            timed_useful += int(inputs["attention_mask"].sum())
            timed_slots += inputs["attention_mask"].numel()
            done += 1
            if elapsed > sizes["budget_s"]:  # packed batches can be slow: keep to the budget
                break
        result[name] = {
            "batches": len(batches),
            "padded_batch_share": padded / len(batches),
            "useful_token_share": useful / slots,
            "timed_batches": done,
            "timed_useful_token_share": timed_useful / timed_slots,
            "useful_tokens_per_s": timed_useful / elapsed,
            "token_slots_per_s": timed_slots / elapsed,
        }
    result["padding_useful_token_ratio"] = result["grouped"]["useful_token_share"]
    result["useful_share_without_grouping"] = result["random"]["useful_token_share"]
    result["grouped_vs_random_throughput"] = _ratio(
        result["grouped"]["useful_tokens_per_s"], result["random"]["useful_tokens_per_s"]
    )
    return result


# ---------------------------------------------------------------------------------------------------------------
# Goals, table, main
# ---------------------------------------------------------------------------------------------------------------


def _goal(name: str, value, target: str, met, note: str | None = None) -> dict:
    goal = {"name": name, "value": value, "target": target, "met": met}
    if note:
        goal["note"] = note
    return goal


def evaluate_goals(results: dict) -> list[dict]:
    goals = []

    def at_least(name, value, target, note=None):
        goals.append(_goal(name, value, f">= {target:g}", None if value is None else value >= target, note))

    at_least("trainer_vs_hand_tokens_ratio", results.get("trainer_vs_hand_tokens_ratio"), TRAINER_VS_HAND_GOAL)
    at_least("lstm_mfu_fp32", results.get("lstm_mfu_fp32"), MFU_GOAL)
    at_least("bf16_speedup", results.get("bf16_speedup"), BF16_SPEEDUP_GOAL)
    lm_summary = (results.get("lm") or {}).get("summary", {}).get("lstm", {})
    plain = lm_summary.get("bf16_speedup_plain")
    kept = _ratio(results.get("bf16_speedup"), plain)
    at_least("bf16_gain_kept_vs_plain_loop", kept, TRAINER_VS_HAND_GOAL,
             note=f"plain PyTorch loop bf16 speedup {plain:.2f}x" if plain else None)
    attention = results.get("attention_detail") or {}
    rows = results.get("attention") or []
    default_impl = attention.get("default_impl", "recompute")
    for n in ATTENTION_GOAL_NS:
        by_impl = {row["impl"]: row for row in rows if row["n"] == n}
        ours, sdpa, naive = by_impl.get(default_impl), by_impl.get("sdpa"), by_impl.get("naive")
        if not ours or not sdpa:
            continue
        workspace = attention.get("chunk_workspace_mb", {}).get(n)
        if ours.get("peak_mb") is not None and sdpa.get("peak_mb") is not None and workspace is not None:
            limit = ATTENTION_VS_SDPA_MEMORY_FACTOR * sdpa["peak_mb"] + workspace
            goals.append(_goal(f"attention_n{n}_{default_impl}_peak_mb", ours["peak_mb"],
                               f"<= {limit:.0f} (2x SDPA + chunk workspace {workspace:.0f} MB)",
                               ours["peak_mb"] <= limit))
        if ours.get("ms") is not None and naive is not None:
            if naive.get("ms") is not None:
                value = _ratio(ours["ms"], naive["ms"])
                goals.append(_goal(f"attention_n{n}_{default_impl}_vs_naive_time", value,
                                   f"<= {ATTENTION_VS_NAIVE_GOAL:g}", value <= ATTENTION_VS_NAIVE_GOAL))
            elif naive.get("skipped") or naive.get("error"):
                goals.append(_goal(f"attention_n{n}_{default_impl}_vs_naive_time", None,
                                   f"<= {ATTENTION_VS_NAIVE_GOAL:g}",
                                   True, note=f"naive cannot run here: {naive.get('skipped') or naive.get('error')}"))
        if ours.get("time_vs_sdpa") is not None:
            goals.append(_goal(f"attention_n{n}_{default_impl}_vs_sdpa_time", ours["time_vs_sdpa"],
                               f"<= {ATTENTION_VS_SDPA_TIME_GOAL:g}",
                               ours["time_vs_sdpa"] <= ATTENTION_VS_SDPA_TIME_GOAL))
    generation = results.get("generation") or {}
    speedup_note = f"{generation.get('new_tokens')} new tokens"
    if generation.get("combined_bound_tokens_per_s"):
        best_ratio = generation["combined_bound_tokens_per_s"] / generation["no_cache_tokens_per_s"]
        speedup_note += f"; at most {best_ratio:.1f}x here even at the weights + step-overhead bound"
    at_least("generation_cache_speedup", results.get("generation_cache_speedup"), GENERATION_SPEEDUP_GOAL,
             note=speedup_note)
    bound = generation.get("weight_stream_bound_tokens_per_s")
    at_least("generation_tokens_per_s", results.get("generation_tokens_per_s"), GENERATION_TOKENS_PER_S_GOAL,
             note=f"this machine streams the step's weights at most {bound:.0f} times/s" if bound else None)
    return goals


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        if value == 0:
            return "0"
        magnitude = abs(value)
        if magnitude >= 1000:
            return f"{value:,.0f}"
        if magnitude >= 100:
            return f"{value:.1f}"
        return f"{value:.{digits}g}"
    return str(value)


def table_rows(results: dict) -> list[tuple]:
    """(measurement, value, anchor, ratio, goal, met) rows for the printed table."""
    goals = {goal["name"]: goal for goal in results.get("goals", [])}

    def goal_of(name):
        goal = goals.get(name)
        return (goal["target"], goal["met"]) if goal else ("", None)

    rows = []
    matmul = results.get("matmul") or {}
    if matmul:
        rows.append(("matmul fp32 GFLOP/s (peak)", matmul["gflops_fp32"], "-", None, "", None))
        rows.append(("matmul bf16 GFLOP/s", matmul["gflops_bf16"], f"fp32 {_fmt(matmul['gflops_fp32'])}",
                     matmul["bf16_vs_fp32"], "", None))
    lm = results.get("lm") or {}
    full_seq = (lm.get("sizes") or {}).get("seq_len")
    for row in lm.get("rows", []):
        if row["path"] == "hand":
            continue
        key = (row["cell"], row["precision"], row["seq_len"])
        anchor = next((r for r in lm["rows"] if (r["cell"], r["precision"], r["seq_len"]) == key and
                       r["path"] == "hand"), None)
        target, met = ("", None)
        if row["path"] == "trainer" and key == ("lstm", "fp32", full_seq):
            target, met = goal_of("trainer_vs_hand_tokens_ratio")
        rows.append((f"lm {row['cell']} {row['precision']} {row['batch_size']}x{row['seq_len']} {row['path']} tokens/s",
                     row["tokens_per_s"], f"hand {_fmt(anchor['tokens_per_s'])}" if anchor else "-",
                     _ratio(row["tokens_per_s"], anchor["tokens_per_s"]) if anchor else None, target, met))
        if row["precision"] == "fp32" and row["path"] == "trainer" and row["seq_len"] == full_seq:
            target, met = goal_of("lstm_mfu_fp32") if row["cell"] == "lstm" else ("", None)
            rows.append((f"lm {row['cell']} fp32 trainer model GFLOP/s (MFU)", row["model_gflops_per_s"],
                         f"peak {_fmt(matmul.get('gflops_fp32'))}", row["mfu_fp32_peak"], target, met))
    for run_name, error in lm.get("plain_reference_errors", {}).items():
        rows.append((f"lm {run_name} plain PyTorch tokens/s", None, f"cannot run: {error[:40]}", None, "", None))
    for cell, summary in lm.get("summary", {}).items():
        shape = f"x{summary.get('bf16_seq_len')}"
        if summary.get("bf16_speedup_trainer") is not None:
            target, met = goal_of("bf16_speedup") if cell == "lstm" else ("", None)
            rows.append((f"lm {cell} bf16 speedup, trainer ({shape})", summary["bf16_speedup_trainer"],
                         "fp32 trainer", summary["bf16_speedup_trainer"], target, met))
        if summary.get("bf16_speedup_hand") is not None:
            rows.append((f"lm {cell} bf16 speedup, hand loop ({shape})", summary["bf16_speedup_hand"], "fp32 hand",
                         summary["bf16_speedup_hand"], "", None))
        if summary.get("bf16_speedup_plain") is not None:
            target, met = goal_of("bf16_gain_kept_vs_plain_loop")
            rows.append((f"lm {cell} bf16 speedup, plain PyTorch ({shape})", summary["bf16_speedup_plain"],
                         "ours (trainer)", _ratio(summary["bf16_speedup_trainer"], summary["bf16_speedup_plain"]),
                         target, met))
    default_impl = (results.get("attention_detail") or {}).get("default_impl", "recompute")
    for row in results.get("attention") or []:
        label = f"attention n={row['n']} {row['impl']} ms"
        if row.get("skipped") or row.get("error"):
            rows.append((label, None, row.get("skipped") or row.get("error"), None, "", None))
            continue
        ours = row["impl"] == default_impl  # the goals apply to the implementation "auto" picks
        prefix = f"attention_n{row['n']}_{default_impl}"
        time_goal = goal_of(f"{prefix}_vs_sdpa_time") if ours else ("", None)
        rows.append((label, row["ms"], "sdpa", row["time_vs_sdpa"], *time_goal))
        memory_goal = goal_of(f"{prefix}_peak_mb") if ours else ("", None)
        rows.append((f"attention n={row['n']} {row['impl']} peak MB", row["peak_mb"], "sdpa", row["memory_vs_sdpa"],
                     *memory_goal))
        if ours:
            naive = next((r for r in results["attention"] if r["n"] == row["n"] and r["impl"] == "naive"), None)
            if naive and naive.get("ms"):
                rows.append((f"attention n={row['n']} {default_impl} vs naive time", row["ms"] / naive["ms"], "naive",
                             row["ms"] / naive["ms"], *goal_of(f"{prefix}_vs_naive_time")))
    generation = results.get("generation") or {}
    if generation:
        rows.append((f"generation tokens/s (cache, {generation['new_tokens']} new)",
                     generation["generation_tokens_per_s"], f"no cache {_fmt(generation['no_cache_tokens_per_s'])}",
                     generation["generation_cache_speedup"], *goal_of("generation_cache_speedup")))
        rows.append(("generation tokens/s (cache) goal", generation["generation_tokens_per_s"],
                     f"weight-stream bound {_fmt(generation.get('weight_stream_bound_tokens_per_s'))}",
                     generation.get("tokens_per_s_vs_weight_stream_bound"), *goal_of("generation_tokens_per_s")))
        if generation.get("combined_bound_tokens_per_s"):
            rows.append(("generation tokens/s (cache)", generation["generation_tokens_per_s"],
                         f"weights + step overhead {_fmt(generation['combined_bound_tokens_per_s'])}",
                         generation["tokens_per_s_vs_combined_bound"], "", None))
    pipeline = results.get("pipeline") or {}
    if pipeline:
        rows.append(("pipeline tokenize+pack tokens/s", pipeline["pipeline_tokens_per_s"],
                     f"encode_batch {_fmt(pipeline['encode_batch_tokens_per_s'])}",
                     pipeline["pipeline_vs_encode_batch_ratio"], "", None))
    padding = results.get("padding") or {}
    if padding:
        rows.append(("padding useful share (grouped)", padding["grouped"]["useful_token_share"],
                     f"random {_fmt(padding['random']['useful_token_share'])}",
                     _ratio(padding["grouped"]["useful_token_share"], padding["random"]["useful_token_share"]), "",
                     None))
        rows.append(("padding batches with padding (grouped)", padding["grouped"]["padded_batch_share"],
                     f"random {_fmt(padding['random']['padded_batch_share'])}", None, "", None))
        rows.append(("padding useful tokens/s (grouped)", padding["grouped"]["useful_tokens_per_s"],
                     f"random {_fmt(padding['random']['useful_tokens_per_s'])}",
                     padding["grouped_vs_random_throughput"], "", None))
    return rows


def format_table(results: dict) -> str:
    header = ("measurement", "value", "anchor", "ratio", "goal", "met?")
    body = [(name, _fmt(value), str(anchor), _fmt(ratio), goal, "" if met is None else ("yes" if met else "NO"))
            for name, value, anchor, ratio, goal, met in table_rows(results)]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) for row in body]
    return "\n".join(lines)


def _json_safe(value):
    """Plain JSON: non-finite floats become null, tuples lists, keys strings, private entries dropped."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def default_threads(mode: str) -> int:
    """All cores; one for smoke, whose tiny shapes gain nothing from threads and, on a loaded machine, lose
    seconds per step to OpenMP barriers waiting for a descheduled thread."""
    return 1 if mode == "smoke" else os.cpu_count() or 1


def run(mode: str = "full", threads: int | None = None, only: list[str] | None = None) -> dict:
    """Run the measurements of `mode` (all, or `only` those named); returns the results (JSON-ready)."""
    sizes = SIZES[mode]
    threads = threads or default_threads(mode)
    selected = [name for name in MEASUREMENTS if not only or name in only]
    results: dict = {"mode": mode, "machine": machine_facts(threads), "sizes": _json_safe(sizes), "errors": {}}
    started = time.perf_counter()
    measured: dict = {}
    steps = {
        "matmul": lambda: measure_matmul(sizes["matmul"]),
        "lm": lambda: measure_lm(sizes["lm"], measured.get("matmul")),
        "attention": lambda: measure_attention(sizes["attention"], threads),
        "generation": lambda: measure_generation(sizes["generation"]),
        "pipeline": lambda: measure_pipeline(sizes["pipeline"]),
        "padding": lambda: measure_padding(sizes["padding"]),
    }
    with _bench_settings(threads):
        for name in selected:
            log(f"{name} ...")
            start = time.perf_counter()
            try:
                measured[name] = steps[name]()
            except Exception as err:  # one failing measurement must not cost the others
                results["errors"][name] = "".join(traceback.format_exception_only(type(err), err)).strip()
                log(f"{name} FAILED: {results['errors'][name]}")
                traceback.print_exc()
            log(f"{name} done in {time.perf_counter() - start:.1f} s")

    matmul = measured.get("matmul", {})
    lm = measured.get("lm", {})
    generation = measured.get("generation", {})
    attention = measured.get("attention", {})
    results.update({
        "matmul_gflops_fp32": matmul.get("gflops_fp32"),
        "matmul_gflops_bf16": matmul.get("gflops_bf16"),
        "trainer_vs_hand_tokens_ratio": lm.get("trainer_vs_hand_tokens_ratio"),
        "lstm_mfu_fp32": lm.get("lstm_mfu_fp32"),
        "bf16_speedup": lm.get("bf16_speedup"),
        "generation_cache_speedup": generation.get("generation_cache_speedup"),
        "generation_tokens_per_s": generation.get("generation_tokens_per_s"),
        "pipeline_vs_encode_batch_ratio": measured.get("pipeline", {}).get("pipeline_vs_encode_batch_ratio"),
        "padding_useful_token_ratio": measured.get("padding", {}).get("padding_useful_token_ratio"),
        "attention": attention.get("rows", []),
        "attention_detail": {k: v for k, v in attention.items() if k != "rows"},
        "matmul": matmul,
        "lm": lm,
        "generation": generation,
        "pipeline": measured.get("pipeline", {}),
        "padding": measured.get("padding", {}),
    })
    results["goals"] = evaluate_goals(results)
    results["wall_s"] = time.perf_counter() - started
    return _json_safe(results)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-nlpft bench",
        description="Measure the hot paths (LM training, attention, generation, data pipeline, padding) against "
                    "this machine's limits. Every figure is a ratio against an anchor measured in the same run.",
    )
    parser.add_argument("--mode", choices=list(SIZES), default="full",
                        help="full (under 20 min on 2 cores), quick (under 3 min) or smoke (tiny shapes)")
    parser.add_argument("--quick", action="store_const", const="quick", dest="mode", help="alias of --mode quick")
    parser.add_argument("--output", default="bench.json", help="JSON file to write (atomically)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: all cores; 1 in smoke mode)")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated subset of {','.join(MEASUREMENTS)}; the others' fields are null")
    return parser


def main(argv: list[str] | None = None) -> int:
    from .training import write_text_atomically  # lazy, like the other package imports here

    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    only = None
    if args.only:
        only = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(only) - set(MEASUREMENTS))
        if unknown:
            build_parser().error(f"--only: unknown measurement(s) {unknown}; choose from {list(MEASUREMENTS)}")
    if args.threads is not None and args.threads < 1:
        build_parser().error("--threads must be at least 1")
    log(f"mode {args.mode}, threads {args.threads or default_threads(args.mode)}, output {args.output}")
    results = run(args.mode, args.threads, only)
    print()
    print(format_table(results))
    write_text_atomically(args.output, json.dumps(results, indent=2, allow_nan=False) + "\n")
    print(f"\nResults: {Path(args.output).resolve()} ({results['wall_s']:.0f} s)")
    if results["errors"]:
        print(f"Failed measurements: {', '.join(results['errors'])}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
