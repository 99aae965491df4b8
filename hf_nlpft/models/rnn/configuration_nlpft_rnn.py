"""Configuration of the `nlpft_rnn` family: embeddings, a stack of RNN/LSTM/GRU layers, task heads.

Self-contained (imports only `transformers` and `huggingface_hub`), so it is copied verbatim into every saved
folder and loads as Hub remote code without `hf_nlpft` installed.
"""

from huggingface_hub.dataclasses import strict
from transformers import PretrainedConfig

RNN_CELLS = ("rnn", "lstm", "gru")
RNN_POOLINGS = ("last", "mean", "max", "attention")

# Every Auto class this family supports, written into each saved config.json so that
# `AutoModelFor*.from_pretrained(folder, trust_remote_code=True)` works for all heads, not only the saved one.
RNN_AUTO_MAP = {
    "AutoConfig": "configuration_nlpft_rnn.RnnConfig",
    "AutoModel": "modeling_nlpft_rnn.RnnModel",
    "AutoModelForCausalLM": "modeling_nlpft_rnn.RnnForCausalLM",
    "AutoModelForMaskedLM": "modeling_nlpft_rnn.RnnForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_nlpft_rnn.RnnForSequenceClassification",
    "AutoModelForTokenClassification": "modeling_nlpft_rnn.RnnForTokenClassification",
}


@strict
class RnnConfig(PretrainedConfig):
    r"""
    A stack of recurrent layers over token embeddings.

    Example:
    ```python
    >>> from hf_nlpft import RnnConfig, RnnForCausalLM
    >>> config = RnnConfig(vocab_size=8000, cell="gru", num_layers=2)
    >>> model = RnnForCausalLM(config)
    ```"""

    model_type = "nlpft_rnn"
    keys_to_ignore_at_inference = ["cache", "hidden_states"]  # Trainer.predict keeps logits only

    vocab_size: int = 8000  # rows of the token embedding matrix
    embedding_size: int = 256  # width of token embeddings (and of the tied LM output layer)
    hidden_size: int = 512  # units per direction in each recurrent layer
    num_layers: int = 2  # stacked recurrent layers
    cell: str = "lstm"  # "rnn" (Elman, tanh), "lstm" or "gru"
    bidirectional: bool = False  # add a right-to-left pass; required False for causal LMs
    dropout: float | int = 0.1  # on embeddings, between recurrent layers and before every head
    classifier_pooling: str = "last"  # sequence vector: "last" state, "mean", "max" or additive "attention"
    classifier_dropout: float | int | None = None  # head dropout; None means `dropout`
    initializer_range: float | int = 0.02  # std of the normal init of embeddings and linear layers
    tie_word_embeddings: bool = True  # LM heads reuse the input embedding matrix
    use_cache: bool = True  # return the recurrent state so generate() pays one step per token
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    mask_token_id: int | None = None  # set from the tokenizer; used by fill-mask and MLM collators
    use_predicate_indicator: bool = False  # token classification (SRL): embed which token is the predicate
    auto_map: dict | None = None  # filled with RNN_AUTO_MAP when None

    def __post_init__(self, **kwargs):
        num_labels = kwargs.get("num_labels")
        if num_labels is not None and self.id2label is not None and num_labels != len(self.id2label):
            raise ValueError(f"num_labels={num_labels} disagrees with id2label, which has {len(self.id2label)} labels")
        if self.auto_map is None:
            self.auto_map = dict(RNN_AUTO_MAP)
        super().__post_init__(**kwargs)

    @property
    def output_size(self) -> int:
        """Width of the per-token outputs of the last layer (both directions concatenated)."""
        return self.hidden_size * (2 if self.bidirectional else 1)

    def validate_architecture(self):
        """Reject impossible configurations when the config is built, not deep inside forward()."""
        if self.cell not in RNN_CELLS:
            raise ValueError(f"RnnConfig.cell must be one of {RNN_CELLS}, got {self.cell!r}")
        if self.classifier_pooling not in RNN_POOLINGS:
            raise ValueError(
                f"RnnConfig.classifier_pooling must be one of {RNN_POOLINGS}, got {self.classifier_pooling!r}"
            )
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"RnnConfig.{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("dropout", "classifier_dropout"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"RnnConfig.{name} must be in [0, 1), got {value}")


# save_pretrained() copies this file beside config.json (Hub remote code).
RnnConfig.register_for_auto_class("AutoConfig")

__all__ = ["RnnConfig"]
