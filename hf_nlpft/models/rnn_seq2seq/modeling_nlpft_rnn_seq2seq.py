"""The `nlpft_rnn_seq2seq` family: a recurrent encoder–decoder with additive (Bahdanau) attention.

One file holds the whole model and imports only torch, transformers and its configuration, so a saved folder
runs as Hub remote code without `hf_nlpft`. The encoder mirrors `nlpft_rnn`'s `RnnModel` parameter for parameter
(`encoder.embeddings.weight`, `encoder.layers.{i}.rnn.*`), so an `nlpft_rnn` checkpoint can warm-start it; padded
sources go through the fused kernels as packed sequences, so every source's outputs equal those computed alone.

At decoder step t (Luong et al. 2015 with Bahdanau's additive score):
    s_t = RNN([y_{t-1}; ã_{t-1}], s_{t-1})           input feeding: the previous attentional vector is fed back
    score_tj = vᵀ tanh(W_s s_t + W_h h_j)             W_h h_j (the "keys") computed once per source
    α_t = softmax_j(score_tj)  (source padding masked)
    c_t = Σ_j α_tj h_j
    ã_t = tanh(W_c [s_t; c_t])
    logits_t = LMHead(ã_t)                            dense → GELU → LayerNorm → (tied) output layer, as nlpft_rnn
"""

import os
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from transformers import GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import Seq2SeqLMOutput
from transformers.utils import ModelOutput, cached_file, logging

from .configuration_nlpft_rnn_seq2seq import RnnSeq2SeqConfig

logger = logging.get_logger(__name__)

RNN_MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RnnSeq2SeqCache:
    """Everything a decoding step needs besides the new token: the encoder runs once per `generate()`.

    - `states[i]`: decoder layer i's `h` (RNN, GRU) or `(h, c)` (LSTM), each `(1, batch, hidden_size)`.
    - `input_feed`: `(batch, hidden_size)` attentional vector ã of the last step (None without input feeding).
    - `memory`: `(batch, src_len, encoder_output_size)` encoder outputs; `keys`: `(batch, src_len, attention_size)`
      their projection `W_h h_j`, computed once per source; `source_mask`: `(batch, src_len)` bool, True on tokens.
    - `seen_tokens`: decoder tokens consumed so far.

    Beam search reorders the cache through `reorder_cache`, and every tensor here is reordered, the source side
    included, so the cache is self-consistent for any `beam_idx`. (generate() expands `encoder_outputs` once per beam
    and never reorders it; forward() reads the source side from the cache whenever one is passed, so the
    never-reordered `encoder_outputs` is only used to start decoding.)
    """

    def __init__(
        self,
        states: list,
        input_feed: torch.Tensor | None,
        memory: torch.Tensor,
        keys: torch.Tensor,
        source_mask: torch.Tensor,
        seen_tokens: int = 0,
    ):
        self.states = states
        self.input_feed = input_feed
        self.memory = memory
        self.keys = keys
        self.source_mask = source_mask
        self.seen_tokens = seen_tokens

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Follow the beams that beam search keeps (the batch dimension is 1 in states, 0 elsewhere)."""
        self.states = [_map_state(state, lambda t: t.index_select(1, beam_idx.to(t.device))) for state in self.states]
        for name in ("input_feed", "memory", "keys", "source_mask"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.index_select(0, beam_idx.to(value.device)))

    def __repr__(self) -> str:
        return (
            f"RnnSeq2SeqCache(layers={len(self.states)}, seen_tokens={self.seen_tokens}, "
            f"source_len={self.memory.shape[1]})"
        )


def _map_state(state, fn):
    return tuple(fn(t) for t in state) if isinstance(state, tuple) else fn(state)


@dataclass
class RnnSeq2SeqEncoderOutput(ModelOutput):
    """
    last_hidden_state: `(batch, src_len, encoder_output_size)` outputs of the last layer (zeros at padded positions).
    final_state: `(batch, encoder_output_size)` last layer's `h` after each source's last real token (forward
        direction) concatenated with the backward direction's `h` after its first token.
    final_cell: the same for the LSTM memory cell `c` (None for RNN and GRU).
    hidden_states: embeddings and every layer's outputs, when `output_hidden_states=True`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    final_state: torch.FloatTensor | None = None
    final_cell: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int | None, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder inputs for teacher forcing: labels shifted one step right after the start token, -100 → pad."""
    shifted = labels.new_zeros(labels.shape)
    shifted[:, 1:] = labels[:, :-1].clone()
    shifted[:, 0] = decoder_start_token_id
    if (shifted == -100).any():
        if pad_token_id is None:
            raise ValueError("labels contain -100 but config.pad_token_id is None: cannot build decoder_input_ids")
        shifted.masked_fill_(shifted == -100, pad_token_id)
    return shifted


@contextmanager
def _onednn_disabled(active: bool):
    """Only the oneDNN switch (`torch.backends.mkldnn.flags()` would also reset its other flags)."""
    if not active:
        yield
        return
    previous = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = previous


class RnnSeq2SeqLayer(nn.Module):
    """One fused recurrent layer (both directions for a bidirectional encoder) followed by dropout."""

    def __init__(self, config: RnnSeq2SeqConfig, input_size: int, bidirectional: bool):
        super().__init__()
        rnn_class = RNN_MODULES[config.cell]
        self.rnn = rnn_class(input_size, config.hidden_size, batch_first=True, bidirectional=bidirectional)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, inputs: torch.Tensor | PackedSequence, state=None):
        if state is not None:  # under autocast the bridge's states are bf16 while the inputs stay float32
            dtype = inputs.data.dtype if isinstance(inputs, PackedSequence) else inputs.dtype
            state = _map_state(state, lambda t: t.to(dtype))
        # CPU autocast is off for the recurrent kernel, which runs in its weights' dtype: oneDNN has no bf16 LSTM
        # primitive on CPUs without AVX-512 ("could not create a primitive descriptor"), and packed input is never
        # autocast anyway. CUDA autocast is untouched.
        # One-token steps (the decoder's loop, generation) skip oneDNN on CPU: its per-call setup dominates them.
        single_step = not isinstance(inputs, PackedSequence) and inputs.device.type == "cpu" and inputs.shape[-2] == 1
        with torch.autocast("cpu", enabled=False), _onednn_disabled(single_step):
            outputs, state = self.rnn(inputs, state)
        if isinstance(outputs, PackedSequence):
            outputs = outputs._replace(data=self.dropout(outputs.data))
        else:
            outputs = self.dropout(outputs)
        return outputs, state


class RnnSeq2SeqPadding:
    """How a 2D attention mask pads its rows, and the moves that turn it into packed, right-aligned input.

    Right padding is the training layout. Left padding (batched sources from a left-padding tokenizer) is rolled to
    the right before packing and rolled back after, so every sequence still sees exactly its own tokens.
    """

    def __init__(self, attention_mask: torch.Tensor):
        mask = attention_mask.bool()
        batch, seq_len = mask.shape
        self.lengths = mask.sum(-1)
        positions = torch.arange(seq_len, device=mask.device).expand(batch, seq_len)
        is_right = torch.equal(mask, positions < self.lengths[:, None])
        is_left = torch.equal(mask, positions >= (seq_len - self.lengths)[:, None])
        if not (is_right or is_left):
            raise ValueError(
                "attention_mask must mark one contiguous run of tokens per row, padded on the right (or on the "
                "left); holes inside a sequence cannot be fed to a recurrent layer"
            )
        self.shift = None if is_right else (seq_len - self.lengths)[:, None]
        self.positions = positions
        # An empty row would break packing; it is run as one (padding) token and its outputs are masked anyway.
        self.packed_lengths = self.lengths.clamp(min=1).cpu()

    def _roll(self, x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        index = (self.positions + shift) % self.positions.shape[1]
        return x.gather(1, index[..., None].expand_as(x))

    def pack(self, x: torch.Tensor) -> PackedSequence:
        if self.shift is not None:
            x = self._roll(x, self.shift)
        return pack_padded_sequence(x, self.packed_lengths, batch_first=True, enforce_sorted=False)

    def unpack(self, packed: PackedSequence, seq_len: int) -> torch.Tensor:
        x, _ = pad_packed_sequence(packed, batch_first=True, total_length=seq_len)
        return x if self.shift is None else self._roll(x, -self.shift)


class RnnSeq2SeqEncoder(nn.Module):
    """Embeddings and a stack of (bi)directional recurrent layers, laid out exactly as `nlpft_rnn`'s RnnModel."""

    main_input_name = "input_ids"  # generate() checks it on the module get_encoder() returns

    def __init__(self, config: RnnSeq2SeqConfig):
        super().__init__()
        self.config = config
        self.embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.embedding_dropout = nn.Dropout(config.dropout)
        input_sizes = [config.embedding_size] + [config.encoder_output_size] * (config.encoder_num_layers - 1)
        self.layers = nn.ModuleList(
            [RnnSeq2SeqLayer(config, size, bidirectional=config.encoder_bidirectional) for size in input_sizes]
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> RnnSeq2SeqEncoderOutput | tuple:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds")
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if inputs_embeds is None:
            inputs_embeds = self.embeddings(input_ids)
        batch, seq_len = inputs_embeds.shape[:2]
        # A full mask needs no packing: the plain fused kernel is the fast path.
        padding = (
            RnnSeq2SeqPadding(attention_mask) if attention_mask is not None and not attention_mask.all() else None
        )

        hidden = self.embedding_dropout(inputs_embeds)
        all_hidden_states = (inputs_embeds,) if output_hidden_states else None
        layer_input = padding.pack(hidden) if padding is not None else hidden
        for layer in self.layers:
            layer_input, state = layer(layer_input)
            if output_hidden_states:
                all_hidden_states += (padding.unpack(layer_input, seq_len) if padding is not None else layer_input,)
        last_hidden_state = padding.unpack(layer_input, seq_len) if padding is not None else layer_input

        # (dirs, B, H) -> (B, dirs * H): forward direction after the last token, backward after the first.
        h, c = state if isinstance(state, tuple) else (state, None)
        final_state = h.transpose(0, 1).reshape(batch, -1)
        final_cell = c.transpose(0, 1).reshape(batch, -1) if c is not None else None
        output = RnnSeq2SeqEncoderOutput(
            last_hidden_state=last_hidden_state,
            final_state=final_state,
            final_cell=final_cell,
            hidden_states=all_hidden_states,
        )
        return output if return_dict else output.to_tuple()


class RnnSeq2SeqAttention(nn.Module):
    """Additive attention `score_tj = vᵀ tanh(W_s s_t + W_h h_j)` and the attentional vector `tanh(W_c [s_t; c_t])`."""

    def __init__(self, config: RnnSeq2SeqConfig):
        super().__init__()
        self.query = nn.Linear(config.hidden_size, config.attention_size)  # W_s (carries the score's bias)
        self.key = nn.Linear(config.encoder_output_size, config.attention_size, bias=False)  # W_h
        self.energy = nn.Linear(config.attention_size, 1, bias=False)  # v
        self.output = nn.Linear(config.hidden_size + config.encoder_output_size, config.hidden_size, bias=False)  # W_c

    def project_keys(self, memory: torch.Tensor) -> torch.Tensor:
        """`W_h h_j` for every source position, computed once per source and reused at every decoder step."""
        return self.key(memory)

    def forward(
        self, queries: torch.Tensor, memory: torch.Tensor, keys: torch.Tensor, source_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`queries` (B, T, H) decoder states → attentional vectors (B, T, H) and alignment weights (B, T, S)."""
        scores = self.energy(torch.tanh(self.query(queries)[:, :, None, :] + keys[:, None])).squeeze(-1)
        # dtype min (not -inf): exp underflows to exactly 0 on padding, and an all-padding row stays finite.
        scores = scores.masked_fill(~source_mask[:, None, :], torch.finfo(scores.dtype).min)
        weights = scores.softmax(-1)
        context = torch.bmm(weights, memory)
        attentional = torch.tanh(self.output(torch.cat([queries, context], dim=-1)))
        return attentional, weights


class RnnSeq2SeqDecoder(nn.Module):
    """Bridge from the encoder's final state, a unidirectional recurrent stack, and attention at every step.

    With `input_feeding` each step's input depends on the previous step's attention, so the decoder steps through
    time in a Python loop (one fused-kernel call per layer per step). Without it the recurrent stack runs fused over
    the whole target and attention is applied to all steps at once afterwards.
    """

    def __init__(self, config: RnnSeq2SeqConfig):
        super().__init__()
        self.config = config
        if config.target_vocab_size is not None:  # otherwise the decoder reads the encoder's (shared) embeddings
            self.embeddings = nn.Embedding(
                config.target_vocab_size, config.embedding_size, padding_idx=config.pad_token_id
            )
        self.embedding_dropout = nn.Dropout(config.dropout)
        num_states = config.decoder_num_layers * config.hidden_size
        self.bridge = nn.Linear(config.encoder_output_size, num_states)  # h_0 of every layer = tanh(W [h→; h←])
        if config.cell == "lstm":
            self.bridge_cell = nn.Linear(config.encoder_output_size, num_states)  # c_0 from the encoder's final c
        first_input = config.embedding_size + (config.hidden_size if config.input_feeding else 0)
        input_sizes = [first_input] + [config.hidden_size] * (config.decoder_num_layers - 1)
        self.layers = nn.ModuleList([RnnSeq2SeqLayer(config, size, bidirectional=False) for size in input_sizes])
        self.attention = RnnSeq2SeqAttention(config)
        self.dropout = nn.Dropout(config.dropout)  # on the attentional vector (fed back and sent to the LM head)

    def initial_state(self, final_state: torch.Tensor, final_cell: torch.Tensor | None) -> list:
        batch, layers, hidden = final_state.shape[0], self.config.decoder_num_layers, self.config.hidden_size

        def per_layer(x: torch.Tensor) -> list[torch.Tensor]:
            x = torch.tanh(x).view(batch, layers, hidden).transpose(0, 1)
            return [x[i : i + 1].contiguous() for i in range(layers)]

        h = per_layer(self.bridge(final_state))
        if self.config.cell != "lstm":
            return h
        if final_cell is None:
            raise ValueError("An LSTM decoder needs the encoder's final_cell to start from")
        return list(zip(h, per_layer(self.bridge_cell(final_cell))))

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        states: list,
        input_feed: torch.Tensor | None,
        memory: torch.Tensor,
        keys: torch.Tensor,
        source_mask: torch.Tensor,
        output_hidden_states: bool = False,
    ):
        """Returns attentional vectors (B, T, H), alignments (B, T, S), new states, the last ã, hidden states."""
        hidden = self.embedding_dropout(inputs_embeds)
        states = list(states)
        layer_outputs = [[] for _ in self.layers] if output_hidden_states else None
        if self.config.input_feeding:
            attentional, alignments = [], []
            for t in range(hidden.shape[1]):
                x = torch.cat([hidden[:, t : t + 1], input_feed[:, None]], dim=-1)
                for i, layer in enumerate(self.layers):
                    x, states[i] = layer(x, states[i])
                    if layer_outputs is not None:
                        layer_outputs[i].append(x)
                step, weights = self.attention(x, memory, keys, source_mask)
                step = self.dropout(step)
                input_feed = step[:, 0]
                attentional.append(step)
                alignments.append(weights)
            attentional, alignments = torch.cat(attentional, dim=1), torch.cat(alignments, dim=1)
            layer_outputs = [torch.cat(outputs, dim=1) for outputs in layer_outputs] if layer_outputs else None
        else:
            x = hidden
            for i, layer in enumerate(self.layers):
                x, states[i] = layer(x, states[i])
                if layer_outputs is not None:
                    layer_outputs[i] = x
            attentional, alignments = self.attention(x, memory, keys, source_mask)
            attentional = self.dropout(attentional)
            input_feed = None
        hidden_states = (inputs_embeds, *layer_outputs, attentional) if output_hidden_states else None
        return attentional, alignments, states, input_feed, hidden_states


class RnnSeq2SeqLMHead(nn.Module):
    """Maps attentional vectors to embedding width, then to target logits with the (tied) output layer.

    Same layout as `nlpft_rnn`'s RnnLMHead, so a decoder LM's head transfers as is.
    """

    def __init__(self, config: RnnSeq2SeqConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.activation = nn.GELU()
        self.layer_norm = nn.LayerNorm(config.embedding_size)
        self.decoder = nn.Linear(config.embedding_size, config.decoder_vocab_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.layer_norm(self.activation(self.dense(hidden_states))))


class RnnSeq2SeqPreTrainedModel(PreTrainedModel):
    config: RnnSeq2SeqConfig
    config_class = RnnSeq2SeqConfig
    base_model_prefix = ""  # no separate base model: the encoder and decoder live on the generation model
    main_input_name = "input_ids"
    _no_split_modules = ["RnnSeq2SeqLayer", "RnnSeq2SeqDecoder"]
    # The input-feeding decoder is a Python loop over steps; checkpointing it would re-run the loop for little gain.
    supports_gradient_checkpointing = False
    _is_stateful = True  # the cache is a running state: it cannot be rolled back (no assisted decoding)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # our cache is RnnSeq2SeqCache, built by forward(), not a key/value EncoderDecoderCache

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, (nn.RNN, nn.LSTM, nn.GRU)):
            for name, param in module.named_parameters():
                if name.startswith("weight_ih"):
                    init.xavier_uniform_(param)
                elif name.startswith("weight_hh"):
                    init.orthogonal_(param)  # keeps the recurrent Jacobian well conditioned at the start
                elif name.startswith("bias_hh") and isinstance(module, nn.LSTM):
                    # Forget-gate bias 1 (gates are ordered i, f, g, o): remember by default early in training.
                    bias = torch.zeros_like(param)
                    bias[module.hidden_size : 2 * module.hidden_size] = 1.0
                    init.copy_(param, bias)
                elif name.startswith("bias"):
                    init.zeros_(param)


class RnnSeq2SeqForConditionalGeneration(RnnSeq2SeqPreTrainedModel, GenerationMixin):
    """RNN encoder–decoder with additive attention and input feeding; generate() runs the encoder once."""

    def __init__(self, config: RnnSeq2SeqConfig):
        super().__init__(config)
        self.encoder = RnnSeq2SeqEncoder(config)
        self.decoder = RnnSeq2SeqDecoder(config)
        self.lm_head = RnnSeq2SeqLMHead(config)
        # The output layer is tied to the target embeddings: the decoder's own, or the shared source matrix.
        target_embeddings = "decoder" if config.target_vocab_size is not None else "encoder"
        self._tied_weights_keys = {"lm_head.decoder.weight": f"{target_embeddings}.embeddings.weight"}
        self.post_init()

    def get_encoder(self, modality: str | None = None) -> RnnSeq2SeqEncoder:
        return self.encoder

    def get_decoder(self) -> RnnSeq2SeqDecoder:
        return self.decoder

    def get_input_embeddings(self) -> nn.Embedding:
        return self.encoder.embeddings

    def set_input_embeddings(self, value: nn.Embedding):
        self.encoder.embeddings = value

    def get_decoder_input_embeddings(self) -> nn.Embedding:
        """The target embeddings: the decoder's own matrix, or the encoder's when the vocabulary is shared."""
        return self.decoder.embeddings if self.config.target_vocab_size is not None else self.encoder.embeddings

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear):
        self.lm_head.decoder = new_embeddings

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def start_decoding(
        self, encoder_outputs: RnnSeq2SeqEncoderOutput, attention_mask: torch.Tensor | None
    ) -> RnnSeq2SeqCache:
        """The state before the first decoder token: bridged encoder state, zero input feed, memory and keys."""
        if encoder_outputs.final_state is None:
            raise ValueError("encoder_outputs must carry final_state (use this model's get_encoder())")
        memory = encoder_outputs.last_hidden_state
        if attention_mask is None:
            source_mask = torch.ones(memory.shape[:2], dtype=torch.bool, device=memory.device)
        else:
            source_mask = attention_mask[:, -memory.shape[1] :].bool().to(memory.device)
        states = self.decoder.initial_state(encoder_outputs.final_state, encoder_outputs.final_cell)
        input_feed = None
        if self.config.input_feeding:
            input_feed = memory.new_zeros(memory.shape[0], self.config.hidden_size)
        keys = self.decoder.attention.project_keys(memory)
        return RnnSeq2SeqCache(states, input_feed, memory, keys, source_mask, seen_tokens=0)

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        cache: RnnSeq2SeqCache | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_outputs: ModelOutput | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ):
        # `input_ids` are the decoder's tokens so far. With a state, only the ones it has not seen are fed (one per
        # step); the encoder never runs again: its outputs come from the cache, or from `encoder_outputs`.
        if cache is not None:
            input_ids = input_ids[:, cache.seen_tokens :]
        model_inputs = {
            "decoder_input_ids": input_ids,
            "encoder_outputs": encoder_outputs,
            "attention_mask": attention_mask,
            "cache": cache,
            "use_cache": use_cache,
        }
        for key in ("output_attentions", "output_hidden_states", "return_dict"):
            if key in kwargs:
                model_inputs[key] = kwargs[key]
        return model_inputs

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: RnnSeq2SeqEncoderOutput | tuple | None = None,
        cache: RnnSeq2SeqCache | None = None,
        labels: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput | tuple:
        r"""
        attention_mask: `(batch, src_len)` 1 on source tokens; padding (right, or left) is exact in the encoder and
            masked out of the attention.
        decoder_input_ids: target tokens fed to the decoder; built from `labels` (shifted right after
            `decoder_start_token_id`, -100 → pad) when only labels are given.
        decoder_attention_mask: accepted for API compatibility and unused: the decoder is causal, so right padding
            of the target never changes the logits at real positions (the loss ignores label -100).
        encoder_outputs: this model's encoder outputs; the encoder is not run again when given.
        cache: the decoder state of earlier steps (`RnnSeq2SeqCache`); when given, the source side (memory, keys,
            mask) is read from it and `input_ids`/`encoder_outputs` are not needed.
        Returns `Seq2SeqLMOutput`; `cross_attentions` is a one-element tuple (one attention "layer", one head) of the
            alignment `(batch, 1, tgt_len, src_len)`, and `decoder_hidden_states` holds the target embeddings, every
            decoder layer's outputs and the attentional vectors.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        if labels is not None and decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        if (decoder_input_ids is None) == (decoder_inputs_embeds is None):
            raise ValueError("Pass exactly one of decoder_input_ids or decoder_inputs_embeds (or labels)")

        if encoder_outputs is not None and not isinstance(encoder_outputs, ModelOutput):
            encoder_outputs = _encoder_output_from_tuple(encoder_outputs)
        if cache is None:
            if encoder_outputs is None:
                encoder_outputs = self.encoder(
                    input_ids,
                    attention_mask=attention_mask,
                    inputs_embeds=inputs_embeds,
                    output_hidden_states=output_hidden_states,
                    return_dict=True,
                )
            cache = self.start_decoding(encoder_outputs, attention_mask)

        if decoder_inputs_embeds is None:
            decoder_inputs_embeds = self.get_decoder_input_embeddings()(decoder_input_ids)
        attentional, alignments, states, input_feed, decoder_hidden_states = self.decoder(
            decoder_inputs_embeds,
            cache.states,
            cache.input_feed,
            cache.memory,
            cache.keys,
            cache.source_mask,
            output_hidden_states=output_hidden_states,
        )
        logits = self.lm_head(attentional)

        loss = None
        if labels is not None:
            loss = _seq2seq_loss(logits, labels, kwargs.get("num_items_in_batch"))
        new_cache = None
        if use_cache:  # a new object: the caller's cache is left as it was
            new_cache = RnnSeq2SeqCache(
                states,
                input_feed,
                cache.memory,
                cache.keys,
                cache.source_mask,
                seen_tokens=cache.seen_tokens + decoder_inputs_embeds.shape[1],
            )
        output = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=new_cache,
            decoder_hidden_states=decoder_hidden_states,
            cross_attentions=(alignments[:, None],) if output_attentions else None,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state if encoder_outputs is not None else None,
            encoder_hidden_states=encoder_outputs.hidden_states if encoder_outputs is not None else None,
        )
        return output if return_dict else output.to_tuple()

    @classmethod
    def from_encoder_decoder_pretrained(
        cls,
        encoder_dir: str | os.PathLike,
        decoder_dir: str | os.PathLike | None = None,
        output_loading_info: bool = False,
        **config_overrides,
    ):
        """A seq2seq model warm-started from `nlpft_rnn` checkpoints (folders or Hub ids with model.safetensors).

        The config comes from the checkpoints' config.json (read as plain dicts, no `hf_nlpft` needed), then
        `config_overrides` (e.g. `attention_size`, `input_feeding`, `dropout`, `decoder_num_layers`):
        vocabulary, widths, encoder depth, cell and direction from the encoder checkpoint; decoder depth, target
        vocabulary (a separate `target_vocab_size` whenever a distinct decoder checkpoint is given) and bos/eos from
        the decoder checkpoint.

        Transferred (whenever the shapes agree; `RnnModel` keys, or the `model.*` keys of a head checkpoint):
        - encoder: `embeddings.weight` and every `layers.{i}.rnn.*` → `encoder.*`, exactly;
        - decoder (from `decoder_dir` only): its `embeddings.weight` → `decoder.embeddings.weight` (separate target
          vocabulary; with a shared one the encoder's matrix serves both sides), `layers.{i}.rnn.*` →
          `decoder.layers.{i}.rnn.*` for i < decoder_num_layers, and its LM head `lm_head.dense.*`,
          `lm_head.layer_norm.*`, `lm_head.decoder.*` (the output weight is tied to the target embeddings). With
          input feeding, the first layer's input is [embedding; ã], so `weight_ih_l0` is transferred partially: the
          embedding columns are copied and the input-feed columns are zeroed (the decoder starts as the LM).
        Always newly initialised: the bridge and the attention (and anything whose shape disagrees).

        The report (`loaded`, `partially_loaded`, `skipped`, `initialized` parameter names) is logged, attached as
        `model.weight_transfer_info`, and returned as `(model, report)` when `output_loading_info=True`.
        """
        encoder_config = _read_rnn_config(encoder_dir)
        decoder_config = _read_rnn_config(decoder_dir) if decoder_dir is not None else None
        values = {
            "vocab_size": encoder_config["vocab_size"],
            "embedding_size": encoder_config["embedding_size"],
            "hidden_size": encoder_config["hidden_size"],
            "encoder_num_layers": encoder_config["num_layers"],
            "cell": encoder_config["cell"],
            "encoder_bidirectional": encoder_config["bidirectional"],
        }
        for key in ("dropout", "initializer_range", "pad_token_id", "bos_token_id", "eos_token_id"):
            if key in encoder_config:
                values[key] = encoder_config[key]
        if decoder_config is not None:
            values["decoder_num_layers"] = decoder_config["num_layers"]
            if os.path.abspath(str(decoder_dir)) != os.path.abspath(str(encoder_dir)):
                values["target_vocab_size"] = decoder_config["vocab_size"]
            for key in ("bos_token_id", "eos_token_id", "tie_word_embeddings"):
                if key in decoder_config:
                    values[key] = decoder_config[key]
        values.update(config_overrides)
        model = cls(cls.config_class(**values))

        plan = {}  # our parameter name -> (source tensor, where it came from)
        encoder_base, _ = _load_rnn_weights(encoder_dir)
        for key, tensor in encoder_base.items():
            if key.startswith(("embeddings.", "layers.")):
                plan[f"encoder.{key}"] = (tensor, f"{encoder_dir}:{key}")
        if decoder_dir is not None:
            decoder_base, decoder_heads = _load_rnn_weights(decoder_dir)
            if model.config.target_vocab_size is not None and "embeddings.weight" in decoder_base:
                plan["decoder.embeddings.weight"] = (decoder_base["embeddings.weight"], f"{decoder_dir}:embeddings")
            for key, tensor in decoder_base.items():
                if key.startswith("layers.") and int(key.split(".")[1]) < model.config.decoder_num_layers:
                    plan[f"decoder.{key}"] = (tensor, f"{decoder_dir}:{key}")
            for key, tensor in decoder_heads.items():
                if key.startswith("lm_head."):
                    plan[key] = (tensor, f"{decoder_dir}:{key}")
        report = _transfer_weights(model, plan)
        model.weight_transfer_info = report
        logger.info(
            "from_encoder_decoder_pretrained: loaded %d tensors (%s); partially loaded %s; skipped %s; "
            "newly initialised %s",
            len(report["loaded"]),
            ", ".join(report["loaded"]),
            report["partially_loaded"],
            report["skipped"],
            report["initialized"],
        )
        return (model, report) if output_loading_info else model


def _encoder_output_from_tuple(outputs: tuple) -> RnnSeq2SeqEncoderOutput:
    """The encoder's `return_dict=False` tuple back as an output (`to_tuple()` drops the fields that are None)."""
    tensors = [value for value in outputs if isinstance(value, torch.Tensor)]
    hidden_states = next((value for value in outputs if isinstance(value, tuple)), None)
    return RnnSeq2SeqEncoderOutput(*tensors, hidden_states=hidden_states)


def _seq2seq_loss(
    logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None
) -> torch.Tensor:
    """Token cross-entropy without shifting (the decoder inputs are already shifted); -100 is ignored.

    With `num_items_in_batch` (Trainer's gradient accumulation) the sum is divided by it instead of averaged.
    """
    logits = logits.float().reshape(-1, logits.shape[-1])
    labels = labels.to(logits.device).reshape(-1)
    if num_items_in_batch is None:
        return nn.functional.cross_entropy(logits, labels, ignore_index=-100)
    loss = nn.functional.cross_entropy(logits, labels, ignore_index=-100, reduction="sum")
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(loss.device)
    return loss / num_items_in_batch


def _read_rnn_config(path) -> dict:
    config, _ = PretrainedConfig.get_config_dict(path)
    if config.get("model_type") != "nlpft_rnn":
        raise ValueError(f"{path} is not an nlpft_rnn checkpoint (model_type={config.get('model_type')!r})")
    return config


def _load_rnn_weights(path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """An `nlpft_rnn` checkpoint's base-model tensors (un-prefixed) and its head tensors."""
    from safetensors.torch import load_file

    weights = load_file(cached_file(str(path), "model.safetensors"))
    if not any(key.startswith("model.") for key in weights):
        return weights, {}  # an RnnModel checkpoint: base keys only
    base = {key.removeprefix("model."): value for key, value in weights.items() if key.startswith("model.")}
    heads = {key: value for key, value in weights.items() if not key.startswith("model.")}
    return base, heads


@torch.no_grad()
def _transfer_weights(model: nn.Module, plan: dict) -> dict[str, list[str]]:
    own = dict(model.named_parameters(remove_duplicate=False))
    tied = getattr(model, "all_tied_weights_keys", None) or {}
    report = {"loaded": [], "partially_loaded": [], "skipped": [], "initialized": []}
    for key, (tensor, origin) in plan.items():
        target = own.get(key)
        if target is None:
            report["skipped"].append(f"{key} ({origin}: no such parameter here)")
        elif key in tied:  # e.g. the output layer: it is the target embedding matrix, loaded (or not) as such
            report["skipped"].append(f"{key} ({origin}: tied to {tied[key]})")
        elif target.shape == tensor.shape:
            target.copy_(tensor.to(target.dtype))
            report["loaded"].append(key)
        elif (
            key.startswith("decoder.layers.0.rnn.weight_ih_l0")
            and target.shape[0] == tensor.shape[0]
            and target.shape[1] > tensor.shape[1]
        ):
            # Input feeding widens the first decoder layer's input to [embedding; ã]: copy the embedding columns,
            # zero the input-feed ones so the warm-started decoder initially computes what the LM computed.
            target[:, : tensor.shape[1]] = tensor.to(target.dtype)
            target[:, tensor.shape[1] :] = 0
            report["partially_loaded"].append(f"{key} (columns :{tensor.shape[1]} of {target.shape[1]})")
        else:
            report["skipped"].append(f"{key} ({origin}: shape {tuple(tensor.shape)} != {tuple(target.shape)})")
    transferred = set(report["loaded"]) | {entry.split(" ")[0] for entry in report["partially_loaded"]}
    report["initialized"] = sorted(name for name in own if name not in transferred and name not in tied)
    return report


# save_pretrained() copies this file and its configuration beside the weights (Hub remote code).
RnnSeq2SeqForConditionalGeneration.register_for_auto_class("AutoModelForSeq2SeqLM")

__all__ = [
    "RnnSeq2SeqCache",
    "RnnSeq2SeqEncoderOutput",
    "RnnSeq2SeqForConditionalGeneration",
    "RnnSeq2SeqPreTrainedModel",
]
