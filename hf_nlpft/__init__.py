"""hf_nlpft: pretrain and fine-tune RNN and additive-attention models for NLP, the Hugging Face way.

Importing the package registers every model family with the Transformers Auto classes, so
`AutoModelFor*.from_pretrained(folder)` works without `trust_remote_code`.
"""

from . import _reproducibility  # noqa: F401 - first: MKL must see its setting before any CPU matmul
from .data import CorpusNotInstalledError, list_corpora, load_corpus
from .models import build_config, register_auto_classes
from .models.additive import (
    AdditiveAttentionConfig,
    AdditiveAttentionForCausalLM,
    AdditiveAttentionForMaskedLM,
    AdditiveAttentionForSequenceClassification,
    AdditiveAttentionForTokenClassification,
    AdditiveAttentionModel,
)
from .models.rnn import (
    RnnCache,
    RnnConfig,
    RnnForCausalLM,
    RnnForMaskedLM,
    RnnForSequenceClassification,
    RnnForTokenClassification,
    RnnModel,
)
from .models.rnn_seq2seq import RnnSeq2SeqConfig, RnnSeq2SeqForConditionalGeneration
from .pipelines import register_pipelines
from .tokenization import train_tokenizer

__version__ = "0.1.0"

register_auto_classes()
register_pipelines()

__all__ = [
    "AdditiveAttentionConfig",
    "AdditiveAttentionForCausalLM",
    "AdditiveAttentionForMaskedLM",
    "AdditiveAttentionForSequenceClassification",
    "AdditiveAttentionForTokenClassification",
    "AdditiveAttentionModel",
    "CorpusNotInstalledError",
    "RnnCache",
    "RnnConfig",
    "RnnForCausalLM",
    "RnnForMaskedLM",
    "RnnForSequenceClassification",
    "RnnForTokenClassification",
    "RnnModel",
    "RnnSeq2SeqConfig",
    "RnnSeq2SeqForConditionalGeneration",
    "build_config",
    "list_corpora",
    "load_corpus",
    "register_auto_classes",
    "train_tokenizer",
]
