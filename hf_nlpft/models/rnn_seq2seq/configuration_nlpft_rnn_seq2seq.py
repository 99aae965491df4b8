"""Configuration of the `nlpft_rnn_seq2seq` family: an RNN encoder–decoder with additive (Bahdanau) attention.

Self-contained (imports only `transformers` and `huggingface_hub`), so it is copied verbatim into every saved
folder and loads as Hub remote code without `hf_nlpft` installed.
"""

from huggingface_hub.dataclasses import strict
from transformers import PretrainedConfig

RNN_SEQ2SEQ_CELLS = ("rnn", "lstm", "gru")

# Every Auto class this family supports, written into each saved config.json so that
# `AutoModel*.from_pretrained(folder, trust_remote_code=True)` works for all of them, not only the saved one.
# There is no separate base model: AutoModel builds the generation model too.
RNN_SEQ2SEQ_AUTO_MAP = {
    "AutoConfig": "configuration_nlpft_rnn_seq2seq.RnnSeq2SeqConfig",
    "AutoModel": "modeling_nlpft_rnn_seq2seq.RnnSeq2SeqForConditionalGeneration",
    "AutoModelForSeq2SeqLM": "modeling_nlpft_rnn_seq2seq.RnnSeq2SeqForConditionalGeneration",
}


@strict
class RnnSeq2SeqConfig(PretrainedConfig):
    r"""
    A (bi)directional recurrent encoder and a recurrent decoder that attends over it at every step
    (`score_j = vᵀ tanh(W_s s_t + W_h h_j)`), with Luong-style input feeding.

    The encoder's parameters are laid out exactly as `nlpft_rnn`'s `RnnModel`, so an `nlpft_rnn` checkpoint can
    warm-start it (see `RnnSeq2SeqForConditionalGeneration.from_encoder_decoder_pretrained`).

    Example:
    ```python
    >>> from hf_nlpft.models.rnn_seq2seq import RnnSeq2SeqConfig, RnnSeq2SeqForConditionalGeneration
    >>> config = RnnSeq2SeqConfig(vocab_size=8000, cell="gru", encoder_num_layers=2, decoder_num_layers=1)
    >>> model = RnnSeq2SeqForConditionalGeneration(config)
    ```"""

    model_type = "nlpft_rnn_seq2seq"
    # Trainer.predict keeps logits only (the cache is an object; encoder lengths differ between batches)
    keys_to_ignore_at_inference = ["cache", "encoder_last_hidden_state"]

    vocab_size: int = 8000  # rows of the source token embedding matrix (of the shared matrix when no target_vocab_size)
    target_vocab_size: int | None = None  # rows of a separate target embedding matrix; None shares the source's
    embedding_size: int = 256  # width of token embeddings (and of the tied output layer)
    hidden_size: int = 512  # units per direction in each encoder layer, and units in each decoder layer
    encoder_num_layers: int = 2  # stacked recurrent encoder layers
    decoder_num_layers: int = 1  # stacked recurrent decoder layers
    cell: str = "lstm"  # "rnn" (Elman, tanh), "lstm" or "gru", for the encoder and the decoder
    encoder_bidirectional: bool = True  # add a right-to-left pass to every encoder layer
    attention_size: int = 256  # width of the additive attention's tanh layer (W_s s_t + W_h h_j)
    dropout: float | int = 0.1  # on embeddings, between recurrent layers and on the attentional vector
    input_feeding: bool = True  # feed the previous attentional vector to the decoder (Luong); steps in a loop
    initializer_range: float | int = 0.02  # std of the normal init of embeddings and linear layers
    tie_word_embeddings: bool = True  # the output layer reuses the target embedding matrix
    use_cache: bool = True  # return the decoder state so generate() pays one decoder step per token
    is_encoder_decoder: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    decoder_start_token_id: int | None = None  # first decoder input; None means `bos_token_id`
    auto_map: dict | None = None  # filled with RNN_SEQ2SEQ_AUTO_MAP when None

    def __post_init__(self, **kwargs):
        if self.decoder_start_token_id is None:
            self.decoder_start_token_id = self.bos_token_id
        if self.auto_map is None:
            self.auto_map = dict(RNN_SEQ2SEQ_AUTO_MAP)
        super().__post_init__(**kwargs)

    @property
    def encoder_output_size(self) -> int:
        """Width of the encoder's per-token outputs (both directions concatenated): the attention's memory."""
        return self.hidden_size * (2 if self.encoder_bidirectional else 1)

    @property
    def decoder_vocab_size(self) -> int:
        """Rows of the target embedding matrix and columns of the logits."""
        return self.target_vocab_size if self.target_vocab_size is not None else self.vocab_size

    def validate_architecture(self):
        """Reject impossible configurations when the config is built, not deep inside forward()."""
        if self.cell not in RNN_SEQ2SEQ_CELLS:
            raise ValueError(f"RnnSeq2SeqConfig.cell must be one of {RNN_SEQ2SEQ_CELLS}, got {self.cell!r}")
        for name in (
            "vocab_size",
            "embedding_size",
            "hidden_size",
            "encoder_num_layers",
            "decoder_num_layers",
            "attention_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"RnnSeq2SeqConfig.{name} must be a positive integer, got {getattr(self, name)}")
        if self.target_vocab_size is not None and self.target_vocab_size < 1:
            raise ValueError(
                f"RnnSeq2SeqConfig.target_vocab_size must be a positive integer or None, got {self.target_vocab_size}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"RnnSeq2SeqConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.decoder_start_token_id is None and self.bos_token_id is None:
            raise ValueError("RnnSeq2SeqConfig needs decoder_start_token_id (or bos_token_id) to start decoding")
        start = self.decoder_start_token_id if self.decoder_start_token_id is not None else self.bos_token_id
        if not 0 <= start < self.decoder_vocab_size:
            raise ValueError(
                f"RnnSeq2SeqConfig.decoder_start_token_id={start} is outside the target vocabulary "
                f"(size {self.decoder_vocab_size})"
            )
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < min(self.vocab_size, self.decoder_vocab_size):
            raise ValueError(
                f"RnnSeq2SeqConfig.pad_token_id={self.pad_token_id} is outside the source or target vocabulary"
            )


# save_pretrained() copies this file beside config.json (Hub remote code).
RnnSeq2SeqConfig.register_for_auto_class("AutoConfig")

__all__ = ["RnnSeq2SeqConfig"]
