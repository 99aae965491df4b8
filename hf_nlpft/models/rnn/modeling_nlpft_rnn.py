"""The `nlpft_rnn` family: token embeddings, a stack of fused RNN/LSTM/GRU layers, and task heads.

One file holds the whole model and imports only torch, transformers and its configuration, so a saved folder
runs as Hub remote code without `hf_nlpft`. Padding is exact: padded batches go through the fused kernels as
packed sequences, so every sequence's outputs equal those computed for it alone.
"""

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import MaskedLMOutput, SequenceClassifierOutput, TokenClassifierOutput
from transformers.utils import ModelOutput

from .configuration_nlpft_rnn import RnnConfig

RNN_MODULES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RnnCache:
    """The recurrent state of every layer after the tokens seen so far.

    It is the whole memory of the past, so `generate()` feeds one new token per step. `states[i]` is `h` (RNN,
    GRU) or `(h, c)` (LSTM) of layer i, each of shape `(num_directions, batch, hidden_size)`.
    """

    def __init__(self, states: list, seen_tokens: int = 0):
        self.states = states
        self.seen_tokens = seen_tokens

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Follow the beams that beam search keeps (batch dimension is 1 in every state tensor)."""
        self.states = [_map_state(state, lambda t: t.index_select(1, beam_idx.to(t.device))) for state in self.states]

    def __repr__(self) -> str:
        return f"RnnCache(layers={len(self.states)}, seen_tokens={self.seen_tokens})"


def _map_state(state, fn):
    return tuple(fn(t) for t in state) if isinstance(state, tuple) else fn(state)


@dataclass
class RnnModelOutput(ModelOutput):
    """
    last_hidden_state: `(batch, seq_len, output_size)` outputs of the last layer (zeros at padded positions).
    final_state: `(batch, output_size)` last layer's state after each sequence's last real token (forward
        direction) concatenated with the backward direction's state after its first token.
    cache: the recurrent state of every layer, to continue the sequences (see `RnnCache`).
    hidden_states: embeddings and every layer's outputs, when `output_hidden_states=True`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    final_state: torch.FloatTensor | None = None
    cache: RnnCache | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class RnnCausalLMOutput(ModelOutput):
    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    cache: RnnCache | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


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


class RnnLayer(GradientCheckpointingLayer):
    """One fused recurrent layer (both directions) followed by dropout."""

    def __init__(self, config: RnnConfig, input_size: int):
        super().__init__()
        self.rnn = RNN_MODULES[config.cell](
            input_size, config.hidden_size, batch_first=True, bidirectional=config.bidirectional
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, inputs: torch.Tensor, state=None, packing: PackedSequence | None = None):
        """`inputs` is a padded batch, or the `.data` of the PackedSequence `packing`; the outputs likewise.

        Only plain tensors go in positionally: activation checkpointing maps over the positional arguments, and on
        CUDA rebuilding a PackedSequence there fails ("Expected data to be a list or tuple of length 2").
        """
        if packing is not None:
            inputs = packing._replace(data=inputs)
        # CPU autocast is off for the recurrent kernel, which runs in its weights' dtype: oneDNN has no bf16 LSTM
        # primitive on CPUs without AVX-512 ("could not create a primitive descriptor"), and packed input is never
        # autocast anyway. CUDA autocast is untouched.
        # One-token steps (cached generation) skip oneDNN on CPU: its per-call setup made a single step ~8x slower
        # than the native kernel (scripts/bench.py, generation).
        single_step = packing is None and inputs.device.type == "cpu" and inputs.shape[-2] == 1
        with torch.autocast("cpu", enabled=False), _onednn_disabled(single_step):
            outputs, state = self.rnn(inputs, state)
        if isinstance(outputs, PackedSequence):
            outputs = outputs.data
        return self.dropout(outputs), state


class RnnPadding:
    """How a 2D attention mask pads its rows, and the moves that turn it into packed, right-aligned input.

    Right padding is the training layout. Left padding (batched prompts in `generate()`) is rolled to the right
    before packing and rolled back after, so every sequence still sees exactly its own tokens.
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
                "left for generation); holes inside a sequence cannot be fed to a recurrent layer"
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


class RnnAttentionPooling(nn.Module):
    """Additive attention over positions: `s_t = uᵀ tanh(W h_t)`, masked softmax, weighted sum of `h_t`."""

    def __init__(self, size: int):
        super().__init__()
        self.dense = nn.Linear(size, size)
        self.query = nn.Linear(size, 1, bias=False)

    def forward(self, hidden_states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.query(torch.tanh(self.dense(hidden_states))).squeeze(-1)
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = scores.softmax(-1)
        return torch.einsum("bt,btd->bd", weights, hidden_states)


class RnnLMHead(nn.Module):
    """Maps recurrent outputs to embedding width, then to vocabulary logits with the (tied) decoder."""

    def __init__(self, config: RnnConfig):
        super().__init__()
        self.dense = nn.Linear(config.output_size, config.embedding_size)
        self.activation = nn.GELU()
        self.layer_norm = nn.LayerNorm(config.embedding_size)
        self.decoder = nn.Linear(config.embedding_size, config.vocab_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.layer_norm(self.activation(self.dense(hidden_states))))


class RnnPreTrainedModel(PreTrainedModel):
    config: RnnConfig
    config_class = RnnConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _no_split_modules = ["RnnLayer"]
    supports_gradient_checkpointing = True
    _is_stateful = True  # the cache is a running state: it cannot be rolled back (no assisted decoding)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # our cache is RnnCache, built by forward(), not a key/value DynamicCache

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


class RnnModel(RnnPreTrainedModel):
    """Embeddings and a stack of recurrent layers; returns per-token outputs, the final state and the cache."""

    def __init__(self, config: RnnConfig):
        super().__init__(config)
        self.embeddings = nn.Embedding(config.vocab_size, config.embedding_size, padding_idx=config.pad_token_id)
        self.embedding_dropout = nn.Dropout(config.dropout)
        input_sizes = [config.embedding_size] + [config.output_size] * (config.num_layers - 1)
        self.layers = nn.ModuleList([RnnLayer(config, size) for size in input_sizes])
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings

    def set_input_embeddings(self, value: nn.Embedding):
        self.embeddings = value

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache: RnnCache | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        token_type_ids: torch.Tensor | None = None,  # accepted for tokenizer compatibility; unused
        **kwargs,
    ) -> RnnModelOutput | tuple:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds")
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        if inputs_embeds is None:
            inputs_embeds = self.embeddings(input_ids)
        batch, seq_len = inputs_embeds.shape[:2]

        if attention_mask is not None and attention_mask.shape[1] > seq_len:
            # generate() passes the mask of the whole sequence while feeding only the new tokens.
            attention_mask = attention_mask[:, -seq_len:]
        # A full mask needs no packing: the plain fused kernel is the fast path (packed LM blocks, no padding).
        padding = RnnPadding(attention_mask) if attention_mask is not None and not attention_mask.all() else None

        hidden = self.embedding_dropout(inputs_embeds)
        all_hidden_states = (inputs_embeds,) if output_hidden_states else None
        # A left-to-right stack needs no packing for right padding: outputs at real positions never see the padding
        # after them, the final state is read at each row's last token, and pad positions are zeroed as unpacking
        # would. Packing (3-4x slower in backward) stays for the backward direction, left padding and the cache.
        masked = (
            padding is not None and padding.shift is None and not self.config.bidirectional
            and not use_cache and cache is None
        )
        packing = padding.pack(hidden) if padding is not None and not masked else None
        layer_input = packing.data if packing is not None else hidden
        keep = attention_mask[..., None].to(hidden.dtype) if masked else None

        def unpack(x: torch.Tensor) -> torch.Tensor:
            if keep is not None:
                return x * keep
            return padding.unpack(packing._replace(data=x), seq_len) if packing is not None else x

        states = cache.states if cache is not None else [None] * len(self.layers)
        new_states = []
        for layer, state in zip(self.layers, states):
            layer_input, state = layer(layer_input, state, packing=packing)
            new_states.append(state)
            if output_hidden_states:
                all_hidden_states += (unpack(layer_input),)
        last_hidden_state = unpack(layer_input)

        if masked:  # the state after each row's last real token is its output there
            final_state = last_hidden_state[torch.arange(batch, device=hidden.device), padding.lengths.clamp(min=1) - 1]
        else:
            last_h = new_states[-1][0] if isinstance(new_states[-1], tuple) else new_states[-1]
            final_state = last_h.transpose(0, 1).reshape(batch, -1)  # (dirs, B, H) -> (B, dirs * H)
        new_cache = None
        if use_cache:
            new_cache = RnnCache(new_states, seen_tokens=(cache.seen_tokens if cache is not None else 0) + seq_len)

        output = RnnModelOutput(
            last_hidden_state=last_hidden_state,
            final_state=final_state,
            cache=new_cache,
            hidden_states=all_hidden_states,
        )
        return output if return_dict else output.to_tuple()


def _padding_mask(input_ids, inputs_embeds, attention_mask) -> torch.Tensor:
    reference = input_ids if input_ids is not None else inputs_embeds[..., 0]
    if attention_mask is None:
        return torch.ones(reference.shape[:2], dtype=torch.bool, device=reference.device)
    return attention_mask[:, -reference.shape[1] :].bool()


class RnnForCausalLM(RnnPreTrainedModel, GenerationMixin):
    """Next-token prediction with a unidirectional stack; the recurrent state is the generation cache."""

    _tied_weights_keys = {"lm_head.decoder.weight": "model.embeddings.weight"}

    def __init__(self, config: RnnConfig):
        super().__init__(config)
        if config.bidirectional:
            raise ValueError("RnnForCausalLM needs bidirectional=False: a backward pass would see the future tokens")
        self.model = RnnModel(config)
        self.lm_head = RnnLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear):
        self.lm_head.decoder = new_embeddings

    def prepare_inputs_for_generation(self, input_ids, cache=None, attention_mask=None, inputs_embeds=None, **kwargs):
        # With a state, only the tokens the state has not seen yet are fed (one per step).
        if cache is not None:
            input_ids = input_ids[:, cache.seen_tokens :]
            inputs_embeds = None
        model_inputs = {"attention_mask": attention_mask, "cache": cache, "use_cache": kwargs.get("use_cache")}
        if inputs_embeds is not None and cache is None:
            model_inputs["inputs_embeds"] = inputs_embeds
        else:
            model_inputs["input_ids"] = input_ids
        for key in ("output_hidden_states", "return_dict", "logits_to_keep"):
            if key in kwargs:
                model_inputs[key] = kwargs[key]
        return model_inputs

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache: RnnCache | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        token_type_ids: torch.Tensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> RnnCausalLMOutput | tuple:
        """`logits_to_keep`: logits of the last n positions only (0: all), or of the positions in a 1D index
        tensor; `generate()` passes 1, which spares the vocabulary projection of every prompt position."""
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            cache=cache,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        positions = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(outputs.last_hidden_state[:, positions])
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        output = RnnCausalLMOutput(loss=loss, logits=logits, cache=outputs.cache, hidden_states=outputs.hidden_states)
        return output if return_dict else output.to_tuple()


class RnnForMaskedLM(RnnPreTrainedModel):
    """Masked-token prediction; needs a bidirectional stack so each position sees both sides."""

    _tied_weights_keys = {"lm_head.decoder.weight": "model.embeddings.weight"}

    def __init__(self, config: RnnConfig):
        super().__init__(config)
        if not config.bidirectional:
            raise ValueError("RnnForMaskedLM needs bidirectional=True: a left-to-right RNN cannot see the right context")
        self.model = RnnModel(config)
        self.lm_head = RnnLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, new_embeddings: nn.Linear):
        self.lm_head.decoder = new_embeddings

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> MaskedLMOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.lm_head(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        output = MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return output if return_dict else output.to_tuple()


class RnnForSequenceClassification(RnnPreTrainedModel):
    """A label (or labels, or a score) per sequence from the pooled recurrent outputs."""

    def __init__(self, config: RnnConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = RnnModel(config)
        if config.classifier_pooling == "attention":
            self.pooler = RnnAttentionPooling(config.output_size)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.dropout
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.output_size, config.num_labels)
        self.post_init()

    def pool(self, outputs: RnnModelOutput, mask: torch.Tensor) -> torch.Tensor:
        """One vector per sequence, by `config.classifier_pooling`; padded positions never contribute."""
        pooling = self.config.classifier_pooling
        hidden = outputs.last_hidden_state
        if pooling == "last":
            return outputs.final_state
        if pooling == "mean":
            weights = mask.to(hidden.dtype)[..., None]
            return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        if pooling == "max":
            return hidden.masked_fill(~mask[..., None], torch.finfo(hidden.dtype).min).amax(1)
        return self.pooler(hidden, mask)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        pooled = self.pool(outputs, _padding_mask(input_ids, inputs_embeds, attention_mask))
        logits = self.classifier(self.dropout(pooled))
        loss = None
        if labels is not None:
            loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config)
        output = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return output if return_dict else output.to_tuple()


class RnnForTokenClassification(RnnPreTrainedModel):
    """A label per token (NER, POS, SRL tags) from the per-token recurrent outputs."""

    def __init__(self, config: RnnConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = RnnModel(config)
        if config.use_predicate_indicator:
            self.predicate_embeddings = nn.Embedding(2, config.embedding_size)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.dropout
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.output_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        predicate_indicator: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> TokenClassifierOutput | tuple:
        """`predicate_indicator` (B,T): 1 on the predicate's tokens, 0 elsewhere (SRL; needs use_predicate_indicator)."""
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if self.config.use_predicate_indicator:
            if predicate_indicator is None:
                raise ValueError("This model marks the predicate: pass predicate_indicator (B, T) of 0/1")
            if inputs_embeds is None:
                inputs_embeds = self.model.embeddings(input_ids)
                input_ids = None
            inputs_embeds = inputs_embeds + self.predicate_embeddings(predicate_indicator)
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.classifier(self.dropout(outputs.last_hidden_state))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits, labels, self.config)
        output = TokenClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return output if return_dict else output.to_tuple()


# save_pretrained() copies this file and its configuration beside the weights (Hub remote code).
RnnModel.register_for_auto_class("AutoModel")
RnnForCausalLM.register_for_auto_class("AutoModelForCausalLM")
RnnForMaskedLM.register_for_auto_class("AutoModelForMaskedLM")
RnnForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
RnnForTokenClassification.register_for_auto_class("AutoModelForTokenClassification")

__all__ = [
    "RnnCache",
    "RnnForCausalLM",
    "RnnForMaskedLM",
    "RnnForSequenceClassification",
    "RnnForTokenClassification",
    "RnnModel",
    "RnnPreTrainedModel",
]
