"""Configuration of the `nlpft_additive` family: pre-norm blocks of multi-head additive (Bahdanau) self-attention.

Self-contained (imports only `transformers` and `huggingface_hub`), so it is copied verbatim into every saved
folder and loads as Hub remote code without `hf_nlpft` installed.
"""

from huggingface_hub.dataclasses import strict
from transformers import PretrainedConfig

ADDITIVE_POOLINGS = ("first", "last", "mean", "max", "attention")
ADDITIVE_ATTENTION_IMPLS = ("auto", "fused", "recompute", "naive")

# Every Auto class this family supports, written into each saved config.json so that
# `AutoModelFor*.from_pretrained(folder, trust_remote_code=True)` works for all heads, not only the saved one.
ADDITIVE_AUTO_MAP = {
    "AutoConfig": "configuration_nlpft_additive.AdditiveAttentionConfig",
    "AutoModel": "modeling_nlpft_additive.AdditiveAttentionModel",
    "AutoModelForCausalLM": "modeling_nlpft_additive.AdditiveAttentionForCausalLM",
    "AutoModelForMaskedLM": "modeling_nlpft_additive.AdditiveAttentionForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_nlpft_additive.AdditiveAttentionForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_nlpft_additive.AdditiveAttentionForTokenClassification",
}


@strict
class AdditiveAttentionConfig(PretrainedConfig):
    r"""
    A stack of pre-norm blocks whose self-attention scores are `v_hᵀ tanh(W_q x_i + W_k x_j)` per head.

    Causality is chosen by the head, not stored here: `AdditiveAttentionForCausalLM` masks future keys, every other
    head attends in both directions.

    Example:
    ```python
    >>> from hf_nlpft import AdditiveAttentionConfig, AdditiveAttentionForMaskedLM
    >>> config = AdditiveAttentionConfig(vocab_size=8000, hidden_size=256, num_attention_heads=4)
    >>> model = AdditiveAttentionForMaskedLM(config)
    ```"""

    model_type = "nlpft_additive"

    vocab_size: int = 8000  # rows of the token embedding matrix (and of the tied LM output layer)
    hidden_size: int = 256  # model width; split evenly across attention heads
    num_hidden_layers: int = 4  # stacked attention + feed-forward blocks
    num_attention_heads: int = 4  # heads, each with its own additive score vector v_h
    intermediate_size: int = 1024  # width of the feed-forward layer inside each block
    hidden_act: str = "gelu"  # feed-forward and LM-head activation
    max_position_embeddings: int = 512  # rows of the learned absolute position table; longer inputs are rejected
    hidden_dropout_prob: float | int = 0.1  # on embeddings and on each residual branch
    attention_probs_dropout_prob: float | int = 0.1  # on the attention probabilities
    layer_norm_eps: float = 1e-12
    initializer_range: float | int = 0.02  # std of the normal init of embeddings, linear layers and score vectors
    attention_chunk_size: int = 128  # queries scored at once; bounds the B×H×chunk×N×d tanh buffer
    # "auto": the compiled CPU kernel where it applies, else "recompute"; "fused": that kernel (CPU only);
    # "recompute": chunked tensor ops, any device; "naive": full B×H×N×N×d broadcast, the reference
    additive_attention_impl: str = "auto"
    classifier_pooling: str = "mean"  # sequence vector: "first", "last", "mean", "max" or additive "attention"
    classifier_dropout: float | int | None = None  # head dropout; None means `hidden_dropout_prob`
    tie_word_embeddings: bool = True  # LM heads reuse the input embedding matrix
    use_cache: bool = False  # no key/value cache: generate() re-runs the whole prefix every step
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    mask_token_id: int | None = None  # set from the tokenizer; used by fill-mask and MLM collators
    use_predicate_indicator: bool = False  # token classification (SRL): embed which token is the predicate
    auto_map: dict | None = None  # filled with ADDITIVE_AUTO_MAP when None

    def __post_init__(self, **kwargs):
        num_labels = kwargs.get("num_labels")
        if num_labels is not None and self.id2label is not None and num_labels != len(self.id2label):
            raise ValueError(f"num_labels={num_labels} disagrees with id2label, which has {len(self.id2label)} labels")
        if self.auto_map is None:
            self.auto_map = dict(ADDITIVE_AUTO_MAP)
        super().__post_init__(**kwargs)

    @property
    def head_dim(self) -> int:
        """Width of each head's query/key/value slice."""
        return self.hidden_size // self.num_attention_heads

    def validate_architecture(self):
        """Reject impossible configurations when the config is built, not deep inside forward()."""
        for name in (
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "attention_chunk_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"AdditiveAttentionConfig.{name} must be a positive integer, got {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"AdditiveAttentionConfig.hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads})"
            )
        if self.classifier_pooling not in ADDITIVE_POOLINGS:
            raise ValueError(
                f"AdditiveAttentionConfig.classifier_pooling must be one of {ADDITIVE_POOLINGS}, "
                f"got {self.classifier_pooling!r}"
            )
        if self.additive_attention_impl not in ADDITIVE_ATTENTION_IMPLS:
            raise ValueError(
                f"AdditiveAttentionConfig.additive_attention_impl must be one of {ADDITIVE_ATTENTION_IMPLS}, "
                f"got {self.additive_attention_impl!r}"
            )
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"AdditiveAttentionConfig.{name} must be in [0, 1), got {value}")
        if self.layer_norm_eps <= 0:
            raise ValueError(f"AdditiveAttentionConfig.layer_norm_eps must be positive, got {self.layer_norm_eps}")
        if self.initializer_range < 0:
            raise ValueError(
                f"AdditiveAttentionConfig.initializer_range must be non-negative, got {self.initializer_range}"
            )


AdditiveAttentionConfig.register_for_auto_class("AutoConfig")

__all__ = ["AdditiveAttentionConfig"]
