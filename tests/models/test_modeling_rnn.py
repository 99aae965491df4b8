import pytest
import torch
from torch import nn

from hf_nlpft import (
    RnnConfig,
    RnnForCausalLM,
    RnnForMaskedLM,
    RnnForSequenceClassification,
    RnnForTokenClassification,
    RnnModel,
)

CELLS = ["rnn", "lstm", "gru"]


def tiny_config(**overrides) -> RnnConfig:
    values = dict(vocab_size=64, embedding_size=12, hidden_size=10, num_layers=2, dropout=0.0)
    values.update(overrides)
    return RnnConfig(**values)


def right_padded_batch(seed: int = 0, vocab_size: int = 64):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab_size, (4, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    for row, length in enumerate([9, 6, 3, 1]):
        attention_mask[row, length:] = 0
        input_ids[row, length:] = 0
    return input_ids, attention_mask


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("use_cache", [True, False])  # unidirectional without cache: masked, not packed
def test_padding_is_exact_for_every_cell_and_direction(cell, bidirectional, use_cache):
    torch.manual_seed(0)
    config = tiny_config(cell=cell, bidirectional=bidirectional)
    input_ids, attention_mask = right_padded_batch()
    base = RnnModel(config).eval()
    token_head = RnnForTokenClassification(tiny_config(cell=cell, bidirectional=bidirectional, num_labels=3)).eval()
    batch = base(input_ids, attention_mask=attention_mask, output_hidden_states=True, use_cache=use_cache)
    batch_logits = token_head(input_ids, attention_mask=attention_mask).logits
    for row in range(input_ids.shape[0]):
        length = int(attention_mask[row].sum())
        alone = base(input_ids[row : row + 1, :length], output_hidden_states=True)
        torch.testing.assert_close(batch.last_hidden_state[row, :length], alone.last_hidden_state[0])
        torch.testing.assert_close(batch.final_state[row], alone.final_state[0])
        for layer_batch, layer_alone in zip(batch.hidden_states, alone.hidden_states):
            torch.testing.assert_close(layer_batch[row, :length], layer_alone[0])
        assert torch.all(batch.last_hidden_state[row, length:] == 0)
        torch.testing.assert_close(batch_logits[row, :length], token_head(input_ids[row : row + 1, :length]).logits[0])


@pytest.mark.parametrize("pooling", ["last", "mean", "max", "attention"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_pooled_classification_ignores_padding(pooling, bidirectional):
    torch.manual_seed(0)
    config = tiny_config(cell="lstm", bidirectional=bidirectional, classifier_pooling=pooling, num_labels=3)
    model = RnnForSequenceClassification(config).eval()
    input_ids, attention_mask = right_padded_batch(seed=1)
    batch_logits = model(input_ids, attention_mask=attention_mask).logits
    for row in range(input_ids.shape[0]):
        length = int(attention_mask[row].sum())
        torch.testing.assert_close(batch_logits[row], model(input_ids[row : row + 1, :length]).logits[0])


def test_final_state_holds_both_directions_at_the_sequence_ends():
    torch.manual_seed(0)
    config = tiny_config(cell="gru", bidirectional=True, num_layers=1)
    model = RnnModel(config).eval()
    input_ids, attention_mask = right_padded_batch()
    out = model(input_ids, attention_mask=attention_mask)
    hidden = config.hidden_size
    for row in range(input_ids.shape[0]):
        length = int(attention_mask[row].sum())
        # Forward direction ends at the last real token, backward direction ends at the first token.
        torch.testing.assert_close(out.final_state[row, :hidden], out.last_hidden_state[row, length - 1, :hidden])
        torch.testing.assert_close(out.final_state[row, hidden:], out.last_hidden_state[row, 0, hidden:])


def test_mask_with_holes_is_rejected():
    model = RnnModel(tiny_config()).eval()
    input_ids = torch.randint(5, 64, (1, 5))
    with pytest.raises(ValueError, match="contiguous"):
        model(input_ids, attention_mask=torch.tensor([[1, 0, 1, 1, 0]]))


def test_recurrent_layers_are_fused_kernels():
    model = RnnModel(tiny_config(cell="gru", num_layers=3))
    assert [type(layer.rnn) for layer in model.layers] == [nn.GRU] * 3


@pytest.mark.parametrize("cell", CELLS)
def test_greedy_generation_with_and_without_cache_is_identical(cell):
    torch.manual_seed(0)
    model = RnnForCausalLM(tiny_config(cell=cell, eos_token_id=None)).eval()
    input_ids, attention_mask = right_padded_batch(seed=2)
    # generate() expects prompts padded on the left.
    lengths = attention_mask.sum(1)
    left_ids = torch.stack([row.roll(int(row.numel() - n)) for row, n in zip(input_ids, lengths)])
    left_mask = torch.stack([row.roll(int(row.numel() - n)) for row, n in zip(attention_mask, lengths)])
    kwargs = dict(attention_mask=left_mask, max_new_tokens=12, do_sample=False, pad_token_id=0)
    cached = model.generate(left_ids, use_cache=True, **kwargs)
    recomputed = model.generate(left_ids, use_cache=False, **kwargs)
    assert cached.shape == (4, 9 + 12)
    assert torch.equal(cached, recomputed)
    # A left-padded row continues exactly as the same prompt alone.
    alone = model.generate(input_ids[1:2, : lengths[1]], max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert torch.equal(alone[0], cached[1, 9 - int(lengths[1]) :])


def test_cache_makes_each_step_a_single_token():
    torch.manual_seed(0)
    model = RnnForCausalLM(tiny_config(eos_token_id=None)).eval()
    prompt = torch.randint(5, 64, (1, 7))
    full = model(prompt).logits
    prefix = model(prompt[:, :4], use_cache=True)
    assert prefix.cache.get_seq_length() == 4
    state = prefix.cache
    for position in range(4, 7):
        step = model(prompt[:, position : position + 1], cache=state, use_cache=True)
        torch.testing.assert_close(step.logits[0, 0], full[0, position])
        state = step.cache
    assert state.get_seq_length() == 7


def test_logits_to_keep_selects_positions_and_generate_projects_only_the_last():
    torch.manual_seed(0)
    model = RnnForCausalLM(tiny_config(eos_token_id=None)).eval()
    prompt = torch.randint(5, 64, (2, 7))
    full = model(prompt).logits
    torch.testing.assert_close(model(prompt, logits_to_keep=1).logits, full[:, -1:])
    torch.testing.assert_close(model(prompt, logits_to_keep=3).logits, full[:, -3:])
    torch.testing.assert_close(model(prompt, logits_to_keep=torch.tensor([0, 4])).logits, full[:, [0, 4]])
    projected = []
    model.lm_head.register_forward_hook(lambda module, args, output: projected.append(output.shape[1]))
    model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert projected == [1, 1, 1]  # the prompt's 7 positions are never projected to the vocabulary


def test_beam_search_returns_ranked_hypotheses():
    torch.manual_seed(0)
    model = RnnForCausalLM(tiny_config(eos_token_id=None)).eval()
    prompt = torch.randint(5, 64, (2, 5))
    out = model.generate(
        prompt,
        max_new_tokens=6,
        num_beams=4,
        num_return_sequences=4,
        do_sample=False,
        pad_token_id=0,
        output_scores=True,
        return_dict_in_generate=True,
    )
    assert out.sequences.shape == (8, 11)
    scores = out.sequences_scores.view(2, 4)
    assert torch.all(scores[:, :-1] >= scores[:, 1:])


def test_causal_lm_trains_and_ties_embeddings():
    torch.manual_seed(0)
    model = RnnForCausalLM(tiny_config())
    assert model.lm_head.decoder.weight is model.model.embeddings.weight
    input_ids = torch.randint(5, 64, (2, 8))
    loss = model(input_ids, labels=input_ids).loss
    loss.backward()
    assert torch.isfinite(loss) and model.model.layers[0].rnn.weight_hh_l0.grad.abs().sum() > 0


def test_causal_lm_rejects_bidirectional_and_mlm_rejects_unidirectional():
    with pytest.raises(ValueError, match="bidirectional=False"):
        RnnForCausalLM(tiny_config(bidirectional=True))
    with pytest.raises(ValueError, match="bidirectional=True"):
        RnnForMaskedLM(tiny_config(bidirectional=False))


def test_masked_lm_loss_only_on_masked_positions():
    torch.manual_seed(0)
    model = RnnForMaskedLM(tiny_config(bidirectional=True))
    input_ids = torch.randint(5, 64, (2, 8))
    labels = torch.full_like(input_ids, -100)
    labels[:, 3] = input_ids[:, 3]
    out = model(input_ids, labels=labels)
    expected = nn.functional.cross_entropy(out.logits[:, 3], input_ids[:, 3])
    torch.testing.assert_close(out.loss, expected)


@pytest.mark.parametrize(
    ("problem_type", "labels", "num_labels"),
    [
        ("single_label_classification", torch.tensor([0, 2]), 3),
        ("multi_label_classification", torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]), 3),
        ("regression", torch.tensor([0.5, -1.0]), 1),
    ],
)
def test_sequence_classification_problem_types(problem_type, labels, num_labels):
    torch.manual_seed(0)
    model = RnnForSequenceClassification(tiny_config(num_labels=num_labels))
    out = model(torch.randint(5, 64, (2, 6)), labels=labels)
    assert model.config.problem_type == problem_type
    assert out.logits.shape == (2, num_labels)
    if problem_type == "single_label_classification":
        torch.testing.assert_close(out.loss, nn.functional.cross_entropy(out.logits, labels))
    elif problem_type == "multi_label_classification":
        torch.testing.assert_close(out.loss, nn.functional.binary_cross_entropy_with_logits(out.logits, labels))
    else:
        torch.testing.assert_close(out.loss, nn.functional.mse_loss(out.logits.squeeze(), labels))


def test_token_classification_loss_ignores_minus_100():
    torch.manual_seed(0)
    model = RnnForTokenClassification(tiny_config(num_labels=4))
    input_ids = torch.randint(5, 64, (2, 5))
    labels = torch.tensor([[0, 1, 2, -100, -100], [3, 3, -100, 1, 0]])
    out = model(input_ids, labels=labels)
    keep = labels != -100
    torch.testing.assert_close(out.loss, nn.functional.cross_entropy(out.logits[keep], labels[keep]))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(cell="transformer"), "cell must be one of"),
        (dict(hidden_size=-4), "hidden_size must be a positive integer"),
        (dict(num_layers=0), "num_layers must be a positive integer"),
        (dict(classifier_pooling="cls"), "classifier_pooling must be one of"),
        (dict(dropout=1.5), "dropout must be in"),
        (dict(id2label={0: "a", 1: "b"}, num_labels=3), "disagrees with id2label"),
    ],
)
def test_invalid_config_is_rejected_when_built(overrides, message):
    with pytest.raises(Exception, match=message):
        tiny_config(**overrides)


def test_lstm_forget_gate_bias_starts_at_one():
    model = RnnModel(tiny_config(cell="lstm"))
    bias = model.layers[0].rnn.bias_hh_l0.detach()
    hidden = model.config.hidden_size
    assert torch.all(bias[hidden : 2 * hidden] == 1) and torch.all(bias[:hidden] == 0)


@pytest.mark.parametrize("cell", CELLS)
def test_masked_unidirectional_path_has_the_packed_paths_gradients(cell):
    """Right padding in a left-to-right stack runs unpacked (masked); values and gradients equal the packed run."""
    torch.manual_seed(0)
    model = RnnModel(tiny_config(cell=cell, bidirectional=False, num_layers=2, dropout=0.0)).train()
    input_ids, attention_mask = right_padded_batch()
    grads = []
    for use_cache in (True, False):  # True forces packing (the state must be exact); False takes the masked path
        model.zero_grad()
        out = model(input_ids, attention_mask=attention_mask, use_cache=use_cache)
        (out.last_hidden_state.square().sum() + out.final_state.sum()).backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], msg=name)
