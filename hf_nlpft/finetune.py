"""`hf-nlpft finetune`: train a task model from a pretrained folder (or from scratch) and evaluate it.

    hf-nlpft finetune --task text-classification --model_name_or_path runs/bbc-lstm-clm \
        --dataset_name bbc_news --output_dir runs/bbc-classifier --num_train_epochs 5
    hf-nlpft finetune --task token-classification --arch rnn --dataset_name peoples_daily_ner ...
    hf-nlpft finetune --task srl --arch additive --dataset_dir data/srl ...
"""

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
from transformers import (
    AutoConfig,
    AutoTokenizer,
    EarlyStoppingCallback,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    Trainer,
    TrainingArguments,
    set_seed,
)

from .adapters import add_lora, save_task_config
from .arguments import DataArguments, ModelArguments, OutputArguments, parse_args
from .cards import render_model_card
from .checkpointing import with_atomic_checkpoints
from .data.loading import DataError, load_raw_datasets, split_off_validation, take_subset
from .hub import push_trained, take_push_request
from .models import apply_config_overrides, build_config, parse_config_overrides
from .models.rnn_seq2seq import RnnSeq2SeqConfig, RnnSeq2SeqForConditionalGeneration
from .tasks import TASKS
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
from .ulmfit import GradualUnfreezingCallback, discriminative_optimizer, freeze_encoder
from .weights import check_weights, use_safetensors

logger = logging.getLogger(__name__)
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".conll", ".props", ".txt")


@dataclass
class FinetuneArguments:
    task: str = field(default=None, metadata={"help": "The task to train.", "choices": list(TASKS)})
    test_file: str | None = field(default=None, metadata={"help": "Test data, evaluated after training."})
    dataset_dir: str | None = field(
        default=None, metadata={"help": "Folder holding train/validation/test files (.jsonl/.csv, .conll for srl)."}
    )
    label_column_name: str | None = field(default=None, metadata={"help": "Label column (text tasks)."})
    tokens_column_name: str | None = field(default=None, metadata={"help": "Tokens column (token tasks)."})
    tags_column_name: str | None = field(default=None, metadata={"help": "Tags column (token tasks)."})
    predicate_column_name: str | None = field(default=None, metadata={"help": "Predicate index column (srl)."})
    source_column_name: str | None = field(default=None, metadata={"help": "Source text column (seq2seq tasks)."})
    target_column_name: str | None = field(default=None, metadata={"help": "Target text column (seq2seq tasks)."})
    encoder_name_or_path: str | None = field(
        default=None, metadata={"help": "Seq2seq tasks: an nlpft_rnn checkpoint to initialise the encoder from."}
    )
    decoder_name_or_path: str | None = field(
        default=None, metadata={"help": "Seq2seq tasks: an nlpft_rnn causal LM to initialise the decoder from."}
    )
    train_fraction: float = field(
        default=1.0, metadata={"help": "Keep this share of the labelled training examples (seeded), e.g. 0.1."}
    )
    freeze_encoder: bool = field(default=False, metadata={"help": "Train only the task head."})
    discriminative_lr_decay: float | None = field(
        default=None, metadata={"help": "ULMFiT: each layer group below the head gets lr / decay^depth (e.g. 2.6)."}
    )
    gradual_unfreezing: bool = field(
        default=False, metadata={"help": "ULMFiT: train the head first, unfreeze one more layer group per epoch."}
    )
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after this many evaluations without improving --metric_for_best_model."}
    )
    length_grouping: bool = field(
        default=True,
        metadata={"help": "Classification and tagging: batch examples of similar length (Transformers' "
                          "--train_sampling_strategy group_by_length), so batches carry little padding; "
                          "`--length_grouping false` for plain random batches."},
    )
    lora: bool = field(
        default=False, metadata={"help": "Train LoRA adapters (and the new head) instead of all weights; saves the adapter."}
    )
    lora_r: int = field(default=8, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling numerator (the update is scaled by alpha/r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target: str | None = field(
        default=None,
        metadata={"help": "Comma-separated Linear layer and/or recurrent weight names to adapt (e.g. "
                          "'weight_ih_l0,weight_hh_l0' or 'q_proj,v_proj'); default: all recurrent weights and the "
                          "family's projections."},
    )


def requested_columns(text_column_name: str | None, finetune_args: FinetuneArguments) -> dict[str, str | None]:
    """The column names the user asked for (None: detect the usual names)."""
    return {
        "text": text_column_name,
        "label": finetune_args.label_column_name,
        "tokens": finetune_args.tokens_column_name,
        "tags": finetune_args.tags_column_name,
        "predicate": finetune_args.predicate_column_name,
        "source": finetune_args.source_column_name,
        "target": finetune_args.target_column_name,
    }


def data_files_of(data_args: DataArguments, finetune_args: FinetuneArguments) -> dict[str, str]:
    files = {"train": data_args.train_file, "validation": data_args.validation_file, "test": finetune_args.test_file}
    if finetune_args.dataset_dir:
        folder = Path(finetune_args.dataset_dir)
        if not folder.is_dir():
            raise DataError(f"--dataset_dir {folder}: no such folder")
        for split in ("train", "validation", "test"):
            found = sorted(p for p in folder.iterdir() if p.stem == split and p.suffix in DATA_SUFFIXES)
            if found:
                files[split] = str(found[0])
        if not files["train"]:
            raise DataError(f"--dataset_dir {folder}: no train file (train.jsonl, train.csv, ...)")
    return {split: path for split, path in files.items() if path}


def load_task_data(task_name: str, data_args: DataArguments, finetune_args: FinetuneArguments) -> datasets.DatasetDict:
    files = {} if data_args.dataset_name else data_files_of(data_args, finetune_args)
    if task_name == "srl" and files:
        from .data.srl import load_srl

        return load_srl(files)
    return load_raw_datasets(data_args.dataset_name, data_args.dataset_config_name, files)


def check_arguments(model_args: ModelArguments, finetune_args: FinetuneArguments, training_args) -> None:
    if finetune_args.task is None:
        raise UsageError(f"--task is required: one of {list(TASKS)}")
    generative = TASKS[finetune_args.task].generative
    sources = [model_args.model_name_or_path, model_args.arch, finetune_args.encoder_name_or_path]
    if sum(bool(source) for source in sources) != 1:
        raise UsageError(
            "Give exactly one of --model_name_or_path (a pretrained model), --arch (from scratch)"
            + (" or --encoder_name_or_path (with an optional --decoder_name_or_path)" if generative else "")
        )
    if finetune_args.decoder_name_or_path and not finetune_args.encoder_name_or_path:
        raise UsageError("--decoder_name_or_path goes with --encoder_name_or_path")
    if finetune_args.encoder_name_or_path and not generative:
        raise UsageError(f"--encoder_name_or_path is for seq2seq tasks, not --task {finetune_args.task}")
    allowed_archs = ("rnn_seq2seq",) if generative else ("rnn", "additive")
    if model_args.arch and model_args.arch not in allowed_archs:
        raise UsageError(f"--arch {model_args.arch} does not fit --task {finetune_args.task}; use {' or '.join(allowed_archs)}")
    if generative and (finetune_args.freeze_encoder or finetune_args.gradual_unfreezing
                       or finetune_args.discriminative_lr_decay):
        raise UsageError("The ULMFiT options apply to classification and tagging heads, not to seq2seq tasks")
    if not 0 < finetune_args.train_fraction <= 1:
        raise UsageError("--train_fraction must be in (0, 1]")
    if finetune_args.early_stopping_patience is not None:
        if training_args.eval_strategy == "no":
            raise UsageError("--early_stopping_patience needs evaluations: set --eval_strategy epoch (or steps)")
        # The best model is reloaded at the end from its checkpoint, so every evaluation needs one; otherwise the
        # Trainer silently keeps the last model (--load_best_model_at_end is set below, after TrainingArguments'
        # own checks ran).
        strategy, steps = training_args.eval_strategy, training_args.eval_steps
        unsaved = training_args.save_strategy != strategy or (strategy == "steps" and steps % training_args.save_steps)
        if training_args.save_strategy != "best" and unsaved:
            needed = f"--save_strategy {strategy.value}" + (
                f" with --save_steps {steps} (or a divisor of --eval_steps)" if strategy == "steps" else ""
            )
            raise UsageError(
                f"--early_stopping_patience reloads the best checkpoint at the end, so save whenever you evaluate: "
                f"{needed} (or --save_strategy best)"
            )
    if finetune_args.gradual_unfreezing and finetune_args.freeze_encoder:
        raise UsageError("--gradual_unfreezing and --freeze_encoder contradict each other; choose one")
    if finetune_args.lora:
        if not model_args.model_name_or_path:
            raise UsageError("--lora adapts a pretrained model: give --model_name_or_path (the adapter stores only "
                             "the change, so the base weights must exist somewhere)")
        if finetune_args.freeze_encoder or finetune_args.gradual_unfreezing or finetune_args.discriminative_lr_decay:
            raise UsageError("--lora already freezes the base weights; drop --freeze_encoder, --gradual_unfreezing "
                             "and --discriminative_lr_decay")
        if finetune_args.lora_r < 1:
            raise UsageError(f"--lora_r must be at least 1, got {finetune_args.lora_r}")


def build_model(task, model_args, finetune_args, tokenizer, label_names: list[str]):
    labels = {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
              "label2id": {name: i for i, name in enumerate(label_names)}} if label_names else {}
    if finetune_args.encoder_name_or_path:
        return RnnSeq2SeqForConditionalGeneration.from_encoder_decoder_pretrained(
            finetune_args.encoder_name_or_path, finetune_args.decoder_name_or_path,
            **parse_config_overrides(RnnSeq2SeqConfig(), model_args.config_overrides),
        )
    if model_args.model_name_or_path:
        config = AutoConfig.from_pretrained(
            model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code,
            **labels, **task.model_overrides,
        )
        # Overrides on a pretrained model change behaviour (pooling, dropout), not shapes the weights fix.
        config = apply_config_overrides(config, model_args.config_overrides)
        if len(tokenizer) > config.vocab_size:
            raise UsageError(f"The tokenizer has {len(tokenizer)} tokens but the model's embedding has {config.vocab_size}")
        return task.auto_class.from_pretrained(
            model_args.model_name_or_path, config=config, trust_remote_code=model_args.trust_remote_code,
            ignore_mismatched_sizes=True, use_safetensors=use_safetensors(model_args.allow_pickle_weights),
        )
    defaults = {"bidirectional": True} if model_args.arch == "rnn" else {}
    special_ids = {name: getattr(tokenizer, name) for name in ("pad_token_id", "bos_token_id", "eos_token_id")}
    if model_args.arch != "rnn_seq2seq":
        special_ids["mask_token_id"] = tokenizer.mask_token_id
    config = build_config(
        model_args.arch, model_args.config_overrides, **defaults, **labels, **task.model_overrides,
        vocab_size=len(tokenizer), **special_ids,
    )
    return task.auto_class.from_config(config)


def check_decoder_tokenizer(decoder_dir: str | None, tokenizer) -> None:
    """One tokenizer serves both sides, so a pretrained decoder must have been trained with the same vocabulary."""
    if decoder_dir and AutoTokenizer.from_pretrained(decoder_dir).get_vocab() != tokenizer.get_vocab():
        raise UsageError(
            f"--decoder_name_or_path {decoder_dir} has another vocabulary than the encoder's tokenizer; pretrain "
            "both language models with the same --tokenizer_name"
        )


def finetune(
    model_args: ModelArguments,
    data_args: DataArguments,
    finetune_args: FinetuneArguments,
    output_args: OutputArguments,
    training_args: TrainingArguments,
) -> dict[str, float]:
    """Train, evaluate on validation, then on test when there is one. Returns all metrics."""
    check_arguments(model_args, finetune_args, training_args)
    for flag in ("model_name_or_path", "encoder_name_or_path", "decoder_name_or_path"):  # pickle-only or damaged
        source = getattr(model_args, flag, None) or getattr(finetune_args, flag, None)
        check_weights(source, model_args.allow_pickle_weights, f"--{flag}")
    push_repo_id = take_push_request(training_args)  # the Trainer must not push; we do, once, at the end
    task = TASKS[finetune_args.task]
    resume = check_output_dir(training_args, output_args.overwrite_output_dir)
    set_seed(training_args.seed)

    raw = load_task_data(task.name, data_args, finetune_args)
    raw = datasets.DatasetDict({s: raw[s] for s in ("train", "validation", "test") if s in raw})
    columns = task.resolve_columns(raw["train"], requested_columns(data_args.text_column_name, finetune_args))
    for split in raw:
        missing = [c for c in columns.values() if c not in raw[split].column_names]
        if missing:
            raise DataError(f"The {split} split lacks column(s) {missing}; it has {raw[split].column_names}")
    # Checked before a validation split is cut off train: examples are then named by their row in the file,
    # and a label held out in that split is not mistaken for one that train never shows.
    label_names = task.label_names(raw, columns)
    raw = split_off_validation(raw, data_args.validation_split_percentage, training_args.seed)
    keep = max(1, round(len(raw["train"]) * finetune_args.train_fraction))
    raw["train"] = take_subset(raw["train"], min(keep, data_args.max_train_samples or keep), training_args.seed)
    for split in ("validation", "test"):
        if split in raw:
            raw[split] = take_subset(raw[split], data_args.max_eval_samples, training_args.seed)

    tokenizer = load_or_train_tokenizer(
        model_args.tokenizer_name, resume or model_args.model_name_or_path or finetune_args.encoder_name_or_path,
        task.texts(raw["train"], columns),
        training_args, model=model_args.tokenizer_model, vocab_size=model_args.tokenizer_vocab_size,
        lowercase=model_args.lowercase, model_max_length=max(data_args.max_seq_length, 512),
    )
    model = build_model(task, model_args, finetune_args, tokenizer, label_names)
    model.config.nlpft_task = task.name  # lets evaluate/predict pick the task of a saved folder
    if finetune_args.lora:
        model = add_lora(model, task.auto_class, finetune_args.lora_r, finetune_args.lora_alpha,
                         finetune_args.lora_dropout, finetune_args.lora_target)
    if task.generative:
        check_decoder_tokenizer(finetune_args.decoder_name_or_path, tokenizer)
        # Scores come from generated text: BLEU, chrF, exact match.
        training_args.predict_with_generate = True
        training_args.generation_max_length = training_args.generation_max_length or task.generation_max_length
        # Saved with the model: generate() and the pipelines then default to the length the scores were computed
        # with, not Transformers' 20 tokens (which silently cuts longer outputs).
        model.generation_config.max_length = training_args.generation_max_length
    logger.info("Model: %s with %s parameters", type(model).__name__, f"{model.num_parameters():,}")
    processed = task.preprocess(raw, tokenizer, label_names, columns, data_args, training_args.main_process_first)

    if finetune_args.length_grouping and not task.generative and training_args.train_sampling_strategy == "random":
        # Shuffled mega-batches sorted by length: the same random order at the coarse level, far less padding.
        training_args.train_sampling_strategy = "group_by_length"
    callbacks, optimizers = [], (None, None)
    if finetune_args.freeze_encoder:
        logger.info("Encoder frozen: %s trainable parameters", f"{freeze_encoder(model):,}")
    if finetune_args.gradual_unfreezing:
        callbacks.append(GradualUnfreezingCallback(model))
    if finetune_args.discriminative_lr_decay:
        optimizers = (discriminative_optimizer(model, training_args, finetune_args.discriminative_lr_decay), None)
    if finetune_args.early_stopping_patience is not None:
        training_args.load_best_model_at_end = True
        training_args.metric_for_best_model = training_args.metric_for_best_model or task.main_metric
        training_args.greater_is_better = True if training_args.greater_is_better is None else training_args.greater_is_better
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=finetune_args.early_stopping_patience))

    use_cache = getattr(model.config, "use_cache", None)  # the Trainer overwrites it with --use_cache (False)
    trainer = with_atomic_checkpoints(Seq2SeqTrainer if task.generative else Trainer)(
        model=model,
        args=training_args,
        train_dataset=processed["train"],
        eval_dataset=processed["validation"],
        processing_class=tokenizer,
        data_collator=task.collator(tokenizer, model),
        compute_metrics=task.compute_metrics(label_names, tokenizer),
        callbacks=callbacks,
        optimizers=optimizers,
    )
    metrics = train_and_save(trainer, resume, use_cache, train_samples=len(processed["train"]))

    eval_metrics = trainer.evaluate()
    trainer.log_metrics("eval", eval_metrics)
    trainer.save_metrics("eval", eval_metrics)
    results, results_split = eval_metrics, "validation"
    output_dir = Path(training_args.output_dir)
    plots = []
    if "test" in processed and "labels" in processed["test"].column_names:
        prediction = trainer.predict(processed["test"], metric_key_prefix="test")
        trainer.log_metrics("test", prediction.metrics)
        trainer.save_metrics("test", prediction.metrics)
        results, results_split = prediction.metrics, "test"
        if trainer.is_world_process_zero():
            plots += task.write_reports(prediction, label_names, output_dir, model=trainer.model, tokenizer=tokenizer,
                                        raw_test=raw["test"], columns=columns)

    if trainer.is_world_process_zero():
        if finetune_args.lora:
            save_task_config(trainer.model, output_dir)
        plots = write_run_outputs(trainer, training_args.output_dir) + plots
        source = data_args.dataset_name or finetune_args.dataset_dir or data_args.train_file
        card = render_model_card(
            model=trainer.model,
            repo_id=training_args.hub_model_id or output_dir.name,
            auto_class=task.auto_class.__name__,
            objective=f"fine-tuning for {task.name}",
            task_type=task.pipeline_tag,
            pipeline_tag=task.pipeline_tag,
            dataset_name=str(Path(source).name if not data_args.dataset_name else source),
            data_description=(
                f"{source}: {len(raw['train']):,} training, {len(raw['validation']):,} validation"
                + (f", {len(raw['test']):,} test" if "test" in raw else "")
                + " examples" + (f"; labels: {', '.join(label_names)}" if label_names else "")
            ),
            tokenizer_description=describe_tokenizer(tokenizer),
            results={k: v for k, v in results.items() if isinstance(v, float) and "runtime" not in k
                     and "per_second" not in k and k != "epoch"},
            results_split=results_split,
            hyperparameters={
                "learning_rate": training_args.learning_rate,
                "num_train_epochs": training_args.num_train_epochs,
                "max_steps": training_args.max_steps,
                "per_device_train_batch_size": training_args.per_device_train_batch_size,
                "max_seq_length": data_args.max_seq_length,
                "train_fraction": finetune_args.train_fraction,
                "freeze_encoder": finetune_args.freeze_encoder,
                "discriminative_lr_decay": finetune_args.discriminative_lr_decay,
                "gradual_unfreezing": finetune_args.gradual_unfreezing,
                "seed": training_args.seed,
            },
            plots=plots,
            base_model=model_args.model_name_or_path,
        )
        card.save(output_dir / "README.md")
        remove_tokenizer_staging(output_dir)
        if push_repo_id:
            push_trained(training_args, push_repo_id)
    return {**metrics, **eval_metrics, **(results if results_split == "test" else {})}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    model_args, data_args, finetune_args, output_args, training_args = parse_args(
        (ModelArguments, DataArguments, FinetuneArguments, OutputArguments, Seq2SeqTrainingArguments), argv,
        prog="hf-nlpft finetune",
    )
    setup_logging()
    metrics = finetune(model_args, data_args, finetune_args, output_args, training_args)
    if training_args.process_index == 0:
        shown = {k: round(v, 4) for k, v in metrics.items() if k.startswith("test_") and isinstance(v, float)}
        print(f"Test metrics: {shown}" if shown else "No labelled test split: see eval_results.json")
        print(f"Model, tokenizer, metrics, plots and model card: {Path(training_args.output_dir).resolve()}")
    return 0
