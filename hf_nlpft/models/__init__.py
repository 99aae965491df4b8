"""Model families, their registration with the Auto classes, and configs built from `--arch` flags."""

import copy

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    PretrainedConfig,
)

from . import additive, rnn, rnn_seq2seq

# `--arch` name -> config class of the family it builds.
CONFIG_CLASSES: dict[str, type[PretrainedConfig]] = {
    "rnn": rnn.RnnConfig,
    "additive": additive.AdditiveAttentionConfig,
    "rnn_seq2seq": rnn_seq2seq.RnnSeq2SeqConfig,
}

# config class -> {Auto class: model class}
AUTO_HEADS = {
    rnn.RnnConfig: {
        AutoModel: rnn.RnnModel,
        AutoModelForCausalLM: rnn.RnnForCausalLM,
        AutoModelForMaskedLM: rnn.RnnForMaskedLM,
        AutoModelForSequenceClassification: rnn.RnnForSequenceClassification,
        AutoModelForTokenClassification: rnn.RnnForTokenClassification,
    },
    additive.AdditiveAttentionConfig: {
        AutoModel: additive.AdditiveAttentionModel,
        AutoModelForCausalLM: additive.AdditiveAttentionForCausalLM,
        AutoModelForMaskedLM: additive.AdditiveAttentionForMaskedLM,
        AutoModelForSequenceClassification: additive.AdditiveAttentionForSequenceClassification,
        AutoModelForTokenClassification: additive.AdditiveAttentionForTokenClassification,
    },
    rnn_seq2seq.RnnSeq2SeqConfig: {
        AutoModel: rnn_seq2seq.RnnSeq2SeqForConditionalGeneration,
        AutoModelForSeq2SeqLM: rnn_seq2seq.RnnSeq2SeqForConditionalGeneration,
    },
}


def register_auto_classes() -> None:
    """Register every family with AutoConfig and the AutoModel* classes (idempotent)."""
    for config_class, heads in AUTO_HEADS.items():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        for auto_class, model_class in heads.items():
            auto_class.register(config_class, model_class, exist_ok=True)


def parse_config_overrides(config: PretrainedConfig, overrides: str | None) -> dict:
    """Typed values of a `--config_overrides` string ("key=value,key=value", as in Transformers' run_clm.py).

    Each value is cast to the type of the field it replaces in `config`; unknown keys are an error.
    """
    if not overrides:
        return {}
    pairs = [item.strip() for item in overrides.split(",") if item.strip()]
    malformed = [item for item in pairs if "=" not in item]
    if malformed:
        raise ValueError(f"--config_overrides: expected key=value pairs, got {malformed}")
    keys = [item.split("=")[0] for item in pairs]
    unknown = [key for key in keys if not hasattr(config, key)]
    if unknown:
        raise ValueError(f"--config_overrides: {type(config).__name__} has no field(s) {unknown}")
    probe = copy.deepcopy(config)
    probe.update_from_string(",".join(pairs))
    return {key: getattr(probe, key) for key in keys}


def apply_config_overrides(config: PretrainedConfig, overrides: str | None) -> PretrainedConfig:
    """`config` with a `--config_overrides` string applied, validated as a whole (a bad combination fails here)."""
    values = {k: v for k, v in config.to_dict().items() if k not in ("model_type", "transformers_version")}
    values.update(parse_config_overrides(config, overrides))
    # Rebuilt from the merged values so the class-level validation runs on the final combination.
    return type(config)(**values)


def build_config(arch: str, overrides: str | None = None, **defaults) -> PretrainedConfig:
    """A validated config for `arch`: the family's defaults, then `defaults`, then the `--config_overrides` string."""
    if arch not in CONFIG_CLASSES:
        raise ValueError(f"Unknown --arch {arch!r}; choose one of {sorted(CONFIG_CLASSES)}")
    return apply_config_overrides(CONFIG_CLASSES[arch](**defaults), overrides)
