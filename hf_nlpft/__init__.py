"""hf_nlpft: pretrain and fine-tune RNN and additive-attention models for NLP, the Hugging Face way.

Importing the package registers every model family with the Transformers Auto classes, so
`AutoModelFor*.from_pretrained(folder)` works without `trust_remote_code`.
"""

from .models import register_auto_classes
from .models.rnn import (
    RnnCache,
    RnnConfig,
    RnnForCausalLM,
    RnnForMaskedLM,
    RnnForSequenceClassification,
    RnnForTokenClassification,
    RnnModel,
)

__version__ = "0.1.0"

register_auto_classes()

__all__ = [
    "RnnCache",
    "RnnConfig",
    "RnnForCausalLM",
    "RnnForMaskedLM",
    "RnnForSequenceClassification",
    "RnnForTokenClassification",
    "RnnModel",
    "register_auto_classes",
]
