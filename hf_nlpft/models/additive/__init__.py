"""Additive (Bahdanau-style) self-attention models, `model_type="nlpft_additive"`."""

from .configuration_nlpft_additive import ADDITIVE_AUTO_MAP, AdditiveAttentionConfig
from .modeling_nlpft_additive import (
    AdditiveAttentionForCausalLM,
    AdditiveAttentionForMaskedLM,
    AdditiveAttentionForSequenceClassification,
    AdditiveAttentionForTokenClassification,
    AdditiveAttentionModel,
    AdditiveAttentionPreTrainedModel,
)

__all__ = [
    "ADDITIVE_AUTO_MAP",
    "AdditiveAttentionConfig",
    "AdditiveAttentionPreTrainedModel",
    "AdditiveAttentionModel",
    "AdditiveAttentionForCausalLM",
    "AdditiveAttentionForMaskedLM",
    "AdditiveAttentionForSequenceClassification",
    "AdditiveAttentionForTokenClassification",
]
