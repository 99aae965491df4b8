"""`hf-nlpft pretrain`: self-supervised pretraining (causal LM, masked LM, SimCSE) through the Trainer.

    hf-nlpft pretrain --objective clm --arch rnn --config_overrides "cell=lstm,hidden_size=256" \
        --dataset_name bbc_news --output_dir runs/bbc-lstm-clm --max_steps 1000
    hf-nlpft pretrain scripts/recipes/pretrain_lstm_clm_bbc.yaml --max_steps 50
"""

import logging
import math
import sys
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import datasets
from huggingface_hub.errors import StrictDataclassError
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    DataCollatorForLanguageModeling,
    DataCollatorWithPadding,
    Trainer,
    TrainingArguments,
    default_data_collator,
    set_seed,
)

from .arguments import DataArguments, ModelArguments, OutputArguments, parse_args
from .cards import render_model_card
from .checkpointing import with_atomic_checkpoints
from .contrastive import ContrastiveTrainer
from .data.loading import (
    TEXT_COLUMN_CANDIDATES,
    load_raw_datasets,
    resolve_column,
    split_off_validation,
    take_subset,
)
from .hub import push_trained, take_push_request
from .models import build_config
from .training import (
    UsageError,
    check_output_dir,
    describe_tokenizer,
    load_or_train_tokenizer,
    remove_tokenizer_staging,
    setup_logging,
    train_and_save,
    write_run_outputs,
)
from .weights import check_weights, use_safetensors

logger = logging.getLogger(__name__)

OBJECTIVES = {  # objective -> (Auto class, card task type, pipeline tag)
    "clm": (AutoModelForCausalLM, "text-generation", "text-generation"),
    "mlm": (AutoModelForMaskedLM, "fill-mask", "fill-mask"),
    "contrastive": (AutoModel, "sentence-similarity", "feature-extraction"),
}


@dataclass
class PretrainArguments:
    objective: str = field(
        default=None,
        metadata={"help": "Self-supervised objective.", "choices": list(OBJECTIVES)},
    )
    mlm_probability: float = field(default=0.15, metadata={"help": "Share of tokens masked (mlm)."})
    temperature: float = field(default=0.05, metadata={"help": "Softmax temperature of SimCSE (contrastive)."})


def build_model_config(model_args: ModelArguments, pretrain_args: PretrainArguments):
    """The config of the model to train, checked against the objective before any data is read."""
    if model_args.model_name_or_path and model_args.arch:
        raise UsageError("Give either --arch (a new model) or --model_name_or_path (continue one), not both")
    if model_args.model_name_or_path:
        config = AutoConfig.from_pretrained(model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code)
    elif model_args.arch:
        if model_args.arch not in ("rnn", "additive"):
            raise UsageError(f"--arch {model_args.arch} cannot be pretrained here; use rnn or additive")
        # An RNN for MLM must read both ways; for CLM only left to right. Overrides may still say otherwise.
        defaults = {"bidirectional": pretrain_args.objective != "clm"} if model_args.arch == "rnn" else {}
        try:
            config = build_config(model_args.arch, model_args.config_overrides, **defaults)
        except (ValueError, StrictDataclassError) as err:  # an unknown field, a bad value or an impossible mix
            raise UsageError(str(err)) from None
    else:
        raise UsageError("Give --arch rnn|additive (with --config_overrides) or --model_name_or_path")
    bidirectional = getattr(config, "bidirectional", None)
    if pretrain_args.objective == "clm" and bidirectional:
        raise UsageError("--objective clm needs a left-to-right model: set bidirectional=false")
    if pretrain_args.objective == "mlm" and bidirectional is False:
        raise UsageError(
            "--objective mlm needs a model that reads both ways: a unidirectional RNN cannot see the right "
            "context; set bidirectional=true (or use --objective clm)"
        )
    return config


def tokenize_for_lm(raw, tokenizer, text_column, data_args, training_args, objective):
    """Tokenize every text, then pack the token stream into `block_size` blocks (as run_clm.py/run_mlm.py do)."""
    block_size = data_args.block_size

    def tokenize(batch):
        return tokenizer(batch[text_column], return_special_tokens_mask=objective == "mlm")

    def group_texts(batch):
        joined = {key: list(chain.from_iterable(batch[key])) for key in batch}
        total = (len(joined["input_ids"]) // block_size) * block_size
        blocks = {key: [values[i : i + block_size] for i in range(0, total, block_size)] for key, values in joined.items()}
        if objective == "clm":
            blocks["labels"] = [list(ids) for ids in blocks["input_ids"]]
        return blocks

    with training_args.main_process_first(desc="tokenize and pack"):
        tokenized = raw.map(
            tokenize,
            batched=True,
            num_proc=data_args.preprocessing_num_workers,
            remove_columns=raw["train"].column_names,
            load_from_cache_file=not data_args.overwrite_cache,
            desc="Tokenizing",
        )
        packed = tokenized.map(
            group_texts,
            batched=True,
            batch_size=1000,
            num_proc=data_args.preprocessing_num_workers,
            load_from_cache_file=not data_args.overwrite_cache,
            desc=f"Packing into blocks of {block_size}",
        )
    return packed


def tokenize_sentences(raw, tokenizer, text_column, data_args, training_args):
    """One example per non-empty line (a sentence or paragraph), truncated to `max_seq_length` tokens."""

    def split_and_tokenize(batch):
        lines = [line.strip() for text in batch[text_column] for line in text.split("\n") if line.strip()]
        return tokenizer(lines, truncation=True, max_length=data_args.max_seq_length)

    with training_args.main_process_first(desc="tokenize sentences"):
        return raw.map(
            split_and_tokenize,
            batched=True,
            num_proc=data_args.preprocessing_num_workers,
            remove_columns=raw["train"].column_names,
            load_from_cache_file=not data_args.overwrite_cache,
            desc="Tokenizing sentences",
        )


def pretrain(
    model_args: ModelArguments,
    data_args: DataArguments,
    pretrain_args: PretrainArguments,
    output_args: OutputArguments,
    training_args: TrainingArguments,
) -> dict[str, float]:
    """Run one pretraining job; returns the train and eval metrics. Writes a Hub-ready folder to output_dir."""
    if pretrain_args.objective is None:
        raise UsageError(f"--objective is required: one of {list(OBJECTIVES)}")
    push_repo_id = take_push_request(training_args)  # the Trainer must not push; we do, once, at the end
    # Everything that can be wrong with the arguments fails here, before any data is read.
    config = build_model_config(model_args, pretrain_args)
    check_weights(model_args.model_name_or_path, model_args.allow_pickle_weights)  # pickle-only or damaged
    # The length of what the objective feeds the model (packed blocks, or truncated sentences) must fit its positions.
    length_flag, length = (
        ("--max_seq_length", data_args.max_seq_length)
        if pretrain_args.objective == "contrastive"
        else ("--block_size", data_args.block_size)
    )
    max_positions = getattr(config, "max_position_embeddings", None)
    if max_positions is not None and length > max_positions:
        raise UsageError(f"{length_flag} {length} exceeds the model's max_position_embeddings {max_positions}")
    resume = check_output_dir(training_args, output_args.overwrite_output_dir)
    set_seed(training_args.seed)

    raw = load_raw_datasets(
        data_args.dataset_name,
        data_args.dataset_config_name,
        {"train": data_args.train_file, "validation": data_args.validation_file},
    )
    raw = datasets.DatasetDict({split: raw[split] for split in ("train", "validation") if split in raw})
    raw = split_off_validation(raw, data_args.validation_split_percentage, training_args.seed)
    text_column = resolve_column(raw["train"], data_args.text_column_name, TEXT_COLUMN_CANDIDATES, "text")
    raw = raw.select_columns([text_column])
    raw["train"] = take_subset(raw["train"], data_args.max_train_samples, training_args.seed)
    raw["validation"] = take_subset(raw["validation"], data_args.max_eval_samples, training_args.seed)

    tokenizer = load_or_train_tokenizer(
        model_args.tokenizer_name,
        resume or model_args.model_name_or_path,
        (text for text in raw["train"][text_column]),  # the train split only: test text stays unseen
        training_args,
        model=model_args.tokenizer_model,
        vocab_size=model_args.tokenizer_vocab_size,
        lowercase=model_args.lowercase,
        model_max_length=getattr(config, "max_position_embeddings", None) or 1_000_000,
    )
    auto_class, task_type, pipeline_tag = OBJECTIVES[pretrain_args.objective]
    if model_args.model_name_or_path:
        model = auto_class.from_pretrained(model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code,
                                           use_safetensors=use_safetensors(model_args.allow_pickle_weights))
    else:
        config.vocab_size = len(tokenizer)
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "mask_token_id"):
            setattr(config, name, getattr(tokenizer, name))
        model = auto_class.from_config(config)
    if len(tokenizer) > model.config.vocab_size:
        raise UsageError(
            f"The tokenizer has {len(tokenizer)} tokens but the model's embedding has {model.config.vocab_size} rows"
        )
    logger.info("Model: %s with %s parameters", type(model).__name__, f"{model.num_parameters():,}")

    if pretrain_args.objective == "contrastive":
        processed = tokenize_sentences(raw, tokenizer, text_column, data_args, training_args)
        collator = DataCollatorWithPadding(tokenizer)
        trainer_class, extra = ContrastiveTrainer, {"temperature": pretrain_args.temperature}
    else:
        processed = tokenize_for_lm(raw, tokenizer, text_column, data_args, training_args, pretrain_args.objective)
        collator = (
            DataCollatorForLanguageModeling(tokenizer, mlm_probability=pretrain_args.mlm_probability)
            if pretrain_args.objective == "mlm"
            else default_data_collator
        )
        trainer_class, extra = Trainer, {}
    for split in ("train", "validation"):
        if len(processed[split]) == 0:
            raise UsageError(
                f"The {split} split yields no examples after tokenization (too little text for "
                f"--block_size {data_args.block_size}?)"
            )

    use_cache = getattr(model.config, "use_cache", None)
    trainer = with_atomic_checkpoints(trainer_class)(
        model=model,
        args=training_args,
        train_dataset=processed["train"],
        eval_dataset=processed["validation"],
        processing_class=tokenizer,
        data_collator=collator,
        **extra,
    )
    metrics = train_and_save(trainer, resume, use_cache, train_samples=len(processed["train"]))
    if pretrain_args.objective != "contrastive":  # every LM example is one full block
        metrics["train_tokens_per_second"] = metrics["train_samples_per_second"] * data_args.block_size
        trainer.save_metrics("train", metrics)

    eval_metrics = trainer.evaluate()
    if pretrain_args.objective != "contrastive":
        eval_metrics["eval_perplexity"] = math.exp(min(eval_metrics["eval_loss"], 700.0))
    eval_metrics["eval_samples"] = len(processed["validation"])
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)

    if trainer.is_world_process_zero():
        output_dir = Path(training_args.output_dir)
        plots = write_run_outputs(trainer, training_args.output_dir)
        card = render_model_card(
            model=trainer.model,
            repo_id=training_args.hub_model_id or output_dir.name,
            auto_class=auto_class.__name__,
            objective={"clm": "causal language modeling", "mlm": "masked language modeling",
                       "contrastive": "unsupervised SimCSE (contrastive)"}[pretrain_args.objective],
            task_type=task_type,
            pipeline_tag=pipeline_tag,
            dataset_name=data_args.dataset_name or Path(data_args.train_file).name,
            data_description=(
                f"{data_args.dataset_name or data_args.train_file}, column `{text_column}`: "
                f"{len(raw['train']):,} training texts, {len(processed['train']):,} training examples"
            ),
            tokenizer_description=describe_tokenizer(tokenizer),
            results={k: v for k, v in eval_metrics.items() if k not in ("epoch", "eval_samples") and "runtime" not in k
                     and "per_second" not in k},
            hyperparameters={
                "objective": pretrain_args.objective,
                "learning_rate": training_args.learning_rate,
                "per_device_train_batch_size": training_args.per_device_train_batch_size,
                "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
                "max_steps": training_args.max_steps,
                "num_train_epochs": training_args.num_train_epochs,
                "block_size": data_args.block_size if pretrain_args.objective != "contrastive" else None,
                "seed": training_args.seed,
            },
            plots=plots,
            base_model=model_args.model_name_or_path,
        )
        card.save(output_dir / "README.md")
        remove_tokenizer_staging(output_dir)
        if push_repo_id:
            push_trained(training_args, push_repo_id)
    return {**metrics, **eval_metrics}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    model_args, data_args, pretrain_args, output_args, training_args = parse_args(
        (ModelArguments, DataArguments, PretrainArguments, OutputArguments, TrainingArguments), argv,
        prog="hf-nlpft pretrain",
    )
    setup_logging()
    pretrain(model_args, data_args, pretrain_args, output_args, training_args)
    if training_args.process_index == 0:
        print(f"Model, tokenizer and model card: {Path(training_args.output_dir).resolve()}")
    return 0
