from .configuration_nlpft_rnn_seq2seq import RnnSeq2SeqConfig
from .modeling_nlpft_rnn_seq2seq import (
    RnnSeq2SeqCache,
    RnnSeq2SeqEncoderOutput,
    RnnSeq2SeqForConditionalGeneration,
    RnnSeq2SeqPreTrainedModel,
)

__all__ = [
    "RnnSeq2SeqCache",
    "RnnSeq2SeqConfig",
    "RnnSeq2SeqEncoderOutput",
    "RnnSeq2SeqForConditionalGeneration",
    "RnnSeq2SeqPreTrainedModel",
]
