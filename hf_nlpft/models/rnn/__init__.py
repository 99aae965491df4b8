from .configuration_nlpft_rnn import RnnConfig
from .modeling_nlpft_rnn import (
    RnnCache,
    RnnForCausalLM,
    RnnForMaskedLM,
    RnnForSequenceClassification,
    RnnForTokenClassification,
    RnnModel,
    RnnPreTrainedModel,
)

__all__ = [
    "RnnCache",
    "RnnConfig",
    "RnnForCausalLM",
    "RnnForMaskedLM",
    "RnnForSequenceClassification",
    "RnnForTokenClassification",
    "RnnModel",
    "RnnPreTrainedModel",
]
