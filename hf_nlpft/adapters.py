"""LoRA adapters (PEFT) for every family: Linear layers, and the recurrent weight matrices of the RNNs.

PEFT cannot replace an `nn.LSTM` module, but it can put a low-rank update on the LSTM's weight tensors
(`LoraConfig(target_parameters=...)`), which is what adapting an RNN means. New task heads are trained in full
(`modules_to_save`) and saved inside the adapter. An adapter folder holds only `adapter_config.json`,
`adapter_model.safetensors`, the tokenizer and `task_config.json` (the task model's config: labels, task); the base
weights stay where `base_model_name_or_path` points.

    hf-nlpft finetune --task text-classification --model_name_or_path runs/lm --lora --lora_r 8 ...
    hf-nlpft merge-adapter runs/lora-classifier runs/merged-classifier
"""

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch
from peft import LoraConfig, PeftConfig, PeftModel, get_peft_model
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
)

from .checkpointing import STAGING_PREFIX, fsync_tree, publish_folder
from .training import UsageError
from .weights import check_weights

logger = logging.getLogger(__name__)

TASK_CONFIG_NAME = "task_config.json"  # not config.json: Transformers would take the folder for a full model
PEFT_TASK_TYPES = {  # our task's Auto class -> PEFT task type (which also picks the Auto class when loading)
    AutoModelForSequenceClassification: "SEQ_CLS",
    AutoModelForTokenClassification: "TOKEN_CLS",
    AutoModelForSeq2SeqLM: "SEQ_2_SEQ_LM",
}
AUTO_CLASSES = {task_type: auto_class for auto_class, task_type in PEFT_TASK_TYPES.items()}
# Freshly initialised parts of a task model: trained in full and stored in the adapter.
NEW_HEAD_MODULES = ("classifier", "pooler", "predicate_embeddings")
# The Linear layers adapted by default (the attention family's projections, the seq2seq attention).
DEFAULT_LINEAR_TARGETS = {
    "nlpft_rnn": [],
    "nlpft_additive": ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"],
    "nlpft_rnn_seq2seq": ["query", "key", "output"],
}


def recurrent_weight_names(model: torch.nn.Module) -> list[str]:
    """`<module>.weight_ih_l0`-style names of every input-to-hidden and hidden-to-hidden matrix of the RNN modules."""
    names = set()
    for module_name, module in model.named_modules():
        if isinstance(module, torch.nn.RNNBase):
            for param_name, _ in module.named_parameters(recurse=False):
                if param_name.startswith("weight_"):
                    names.add(f"{module_name.rsplit('.', 1)[-1]}.{param_name}")
    return sorted(names)


def lora_config_for(
    model: PreTrainedModel, auto_class, r: int, alpha: int, dropout: float, target: str | None = None
) -> LoraConfig:
    """The LoraConfig for a task model: `target` is a comma-separated list of Linear module names and/or
    recurrent weight names (e.g. `q_proj,v_proj` or `weight_hh_l0`); default: every recurrent matrix and the
    family's projections."""
    recurrent = recurrent_weight_names(model)
    if target:
        wanted = [name.strip() for name in target.split(",") if name.strip()]
        parameters = [name for name in recurrent if any(name.endswith(w) for w in wanted)]
        parameter_suffixes = {w for w in wanted if any(name.endswith(w) for name in recurrent)}
        modules = [w for w in wanted if w not in parameter_suffixes]
        linear_names = {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
        unknown = [w for w in modules if w not in linear_names]
        if unknown:
            raise UsageError(
                f"--lora_target {target}: {unknown} name no Linear layer or recurrent weight of this model; "
                f"Linear layers: {sorted(linear_names)}, recurrent weights: {recurrent or 'none'}"
            )
    else:
        parameters, modules = recurrent, DEFAULT_LINEAR_TARGETS.get(model.config.model_type, [])
    heads = sorted(name for name, _ in model.named_children() if name in NEW_HEAD_MODULES)
    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=modules,
        target_parameters=parameters or None,
        modules_to_save=heads or None,
        task_type=PEFT_TASK_TYPES[auto_class],
    )


def add_lora(model: PreTrainedModel, auto_class, r: int, alpha: int, dropout: float, target: str | None = None) -> PeftModel:
    """Wrap `model` with LoRA adapters; only the adapters and new heads remain trainable."""
    peft_model = get_peft_model(model, lora_config_for(model, auto_class, r, alpha, dropout, target))
    trainable, total = peft_model.get_nb_trainable_parameters()
    message = f"LoRA: {trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%)"
    logger.info(message)
    print(message)
    return peft_model


def is_adapter_folder(path: str | os.PathLike) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def save_task_config(peft_model: PeftModel, output_dir: str | os.PathLike) -> None:
    """The task model's config (labels, task, pooling) beside the adapter, for `load_adapter_model`."""
    peft_model.get_base_model().config.to_json_file(Path(output_dir) / TASK_CONFIG_NAME)


def load_adapter_model(
    adapter_dir: str | os.PathLike, trust_remote_code: bool = False, use_safetensors: bool | None = True
) -> PeftModel:
    """Base model (with the task config saved beside the adapter: labels, task) plus the adapter, ready to use.

    Plain PEFT loads the same folder: `AutoPeftModelForSequenceClassification.from_pretrained(adapter_dir,
    num_labels=N)`; this function also restores the label names. `use_safetensors=True` (the default) refuses
    pickle weights (`adapter_model.bin`, a base `pytorch_model.bin`) in local folders; None allows them.
    """
    peft_config = PeftConfig.from_pretrained(str(adapter_dir))
    check_weights(adapter_dir, allow_pickle=use_safetensors is not True, flag="adapter")
    check_weights(peft_config.base_model_name_or_path, allow_pickle=use_safetensors is not True, flag="base model")
    auto_class = AUTO_CLASSES.get(peft_config.task_type)
    if auto_class is None:
        raise UsageError(f"{adapter_dir}: adapter task type {peft_config.task_type!r} is not one of {list(AUTO_CLASSES)}")
    base_config = load_task_config(adapter_dir, trust_remote_code=trust_remote_code)
    base = auto_class.from_pretrained(
        peft_config.base_model_name_or_path, config=base_config, trust_remote_code=trust_remote_code,
        use_safetensors=use_safetensors,
    )
    return PeftModel.from_pretrained(base, str(adapter_dir)).eval()


def load_task_config(path: str | os.PathLike, trust_remote_code: bool = False):
    """The config of a model folder, or the task config saved beside an adapter."""
    if is_adapter_folder(path) and (Path(path) / TASK_CONFIG_NAME).is_file():
        base = PeftConfig.from_pretrained(str(path)).base_model_name_or_path
        config_class = type(AutoConfig.from_pretrained(base, trust_remote_code=trust_remote_code))
        return config_class.from_json_file(str(Path(path) / TASK_CONFIG_NAME))
    return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)


def load_task_model(
    auto_class, path: str | os.PathLike, trust_remote_code: bool = False, use_safetensors: bool | None = True
) -> PreTrainedModel:
    """A model folder, or an adapter folder merged into its base (inference: one weight matrix per layer again).

    `use_safetensors` as in `from_pretrained`: True (the default) loads safetensors weights only.
    """
    if is_adapter_folder(path):
        return load_adapter_model(path, trust_remote_code=trust_remote_code, use_safetensors=use_safetensors).merge_and_unload()
    return auto_class.from_pretrained(path, trust_remote_code=trust_remote_code, use_safetensors=use_safetensors)


def merge_adapter(adapter_dir: str | os.PathLike, output_dir: str | os.PathLike, trust_remote_code: bool = False) -> Path:
    """Fold the adapter into the base weights and write a normal, portable model folder (written to a temporary
    sibling, then renamed: the folder appears complete or not at all)."""
    output_dir = Path(output_dir)
    if output_dir.exists():
        raise UsageError(f"{output_dir} already exists; choose a new folder for the merged model")
    if not is_adapter_folder(adapter_dir):
        raise UsageError(f"{adapter_dir} is not an adapter folder (no adapter_config.json)")
    merged = load_adapter_model(adapter_dir, trust_remote_code=trust_remote_code).merge_and_unload()
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{output_dir.name}-", dir=output_dir.parent))
    try:
        merged.save_pretrained(staging)
        AutoTokenizer.from_pretrained(adapter_dir).save_pretrained(staging)
        fsync_tree(staging)
        publish_folder(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-nlpft merge-adapter", description="Fold a LoRA adapter into its base model: a normal model folder."
    )
    parser.add_argument("adapter_dir", help="a folder written by `hf-nlpft finetune --lora`")
    parser.add_argument("output_dir", help="the merged model folder to create (must not exist)")
    parser.add_argument("--trust_remote_code", action="store_true", help="allow the base model's Hub code")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    print(f"Merged model: {merge_adapter(args.adapter_dir, args.output_dir, args.trust_remote_code).resolve()}")
    return 0
