"""Model families. `register_auto_classes()` makes them loadable through the standard Auto classes."""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

from . import rnn


def _families() -> list:
    """(config class, {Auto class: model class}) for each family that is importable."""
    families = [
        (
            rnn.RnnConfig,
            {
                AutoModel: rnn.RnnModel,
                AutoModelForCausalLM: rnn.RnnForCausalLM,
                AutoModelForMaskedLM: rnn.RnnForMaskedLM,
                AutoModelForSequenceClassification: rnn.RnnForSequenceClassification,
                AutoModelForTokenClassification: rnn.RnnForTokenClassification,
            },
        )
    ]
    return families


def register_auto_classes() -> None:
    """Register every family with AutoConfig and the AutoModel* classes (idempotent)."""
    for config_class, heads in _families():
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        for auto_class, model_class in heads.items():
            auto_class.register(config_class, model_class, exist_ok=True)
