import os
import shutil

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError

from hf_nlpft.models.additive import (
    AdditiveAttentionConfig,
    AdditiveAttentionForCausalLM,
    AdditiveAttentionForMaskedLM,
    AdditiveAttentionForSequenceClassification,
    AdditiveAttentionForTokenClassification,
    AdditiveAttentionModel,
    modeling_nlpft_additive,
)
from hf_nlpft.models.additive.modeling_nlpft_additive import (
    AdditiveScoreFunction,
    FusedAdditiveScoreFunction,
    additive_scores,
    fused_cpu_kernel,
    fused_kernel_unavailable_reason,
)

# Config validation errors surface either directly or wrapped by @strict's validator machinery.
CONFIG_ERRORS = (ValueError, StrictDataclassClassValidationError)


def tiny_config(**overrides) -> AdditiveAttentionConfig:
    values = dict(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=32,
        max_position_embeddings=32,
        attention_chunk_size=4,  # smaller than the test sequences so the chunk loop really runs
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    values.update(overrides)
    return AdditiveAttentionConfig(**values)


def right_padded_batch(seed: int = 0, vocab_size: int = 64):
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, vocab_size, (4, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    for row, length in enumerate([9, 6, 3, 1]):
        attention_mask[row, length:] = 0
        input_ids[row, length:] = 0
    return input_ids, attention_mask


# ---------------------------------------------------------------- additive score kernel


def masked_attention(q, k, v, values, allowed, chunk_size, causal, impl):
    """Scores -> masked softmax -> weighted values, as the attention module does it."""
    scores = additive_scores(q, k, v, chunk_size, causal, impl)
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) @ values


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(("batch", "heads", "length", "head_dim", "chunk_size"), [(2, 3, 13, 5, 4), (1, 2, 7, 8, 16)])
@pytest.mark.parametrize("impl", ["recompute", "fused"])
def test_memory_lean_impls_match_naive_outputs_and_gradients(impl, causal, batch, heads, length, head_dim, chunk_size):
    generator = torch.Generator().manual_seed(length)
    shapes = {"q": (batch, heads, length, head_dim), "k": (batch, heads, length, head_dim), "v": (heads, head_dim)}
    leaves = {name: torch.randn(shape, generator=generator, requires_grad=True) for name, shape in shapes.items()}
    values = torch.randn(batch, heads, length, head_dim, generator=generator)
    key_mask = torch.ones(batch, length, dtype=torch.bool)
    key_mask[0, length - 3 :] = False  # right padding on the first sequence
    allowed = key_mask[:, None, None, :]
    if causal:
        allowed = allowed & torch.ones(length, length, dtype=torch.bool).tril()
    upstream = torch.randn(batch, heads, length, head_dim, generator=generator)

    results = {}
    for name in ("naive", impl):
        out = masked_attention(leaves["q"], leaves["k"], leaves["v"], values, allowed, chunk_size, causal, name)
        grads = torch.autograd.grad((out * upstream).sum(), list(leaves.values()))
        results[name] = (out, *grads)
    for naive, lean in zip(results["naive"], results[impl], strict=True):
        torch.testing.assert_close(lean, naive, atol=1e-5, rtol=1e-4)


SCORE_FUNCTIONS = {
    "recompute": lambda q, k, v, causal: AdditiveScoreFunction.apply(q, k, v, 2, causal),  # chunks of 2 queries
    "fused": lambda q, k, v, causal: FusedAdditiveScoreFunction.apply(q, k, v, causal),
}


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("impl", list(SCORE_FUNCTIONS))
def test_score_functions_pass_gradcheck_in_float64(impl, causal):
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(2, 2, 5, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    k = torch.randn(2, 2, 5, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    v = torch.randn(2, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    # Under causal=True future keys' scores may be left at 0 with no gradient (the caller masks them): check the rest.
    keep = torch.ones(5, 5, dtype=torch.bool).tril() if causal else torch.ones(5, 5, dtype=torch.bool)
    scores = SCORE_FUNCTIONS[impl]
    assert torch.autograd.gradcheck(lambda q, k, v: scores(q, k, v, causal)[..., keep], (q, k, v))


def test_fused_kernel_builds_where_a_c_compiler_exists():
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler on this machine: the fused kernel cannot be built, 'auto' uses recompute")
    assert fused_cpu_kernel() is not None, fused_kernel_unavailable_reason()


def test_fused_large_values_take_the_exact_path():
    """|q| beyond the exponential form's range (e^(2q) overflows) must still give naive's scores and gradients."""
    generator = torch.Generator().manual_seed(2)
    q = (torch.randn(1, 2, 6, 4, generator=generator) * 30).requires_grad_()  # some |q| > 40
    k = torch.randn(1, 2, 6, 4, generator=generator).requires_grad_()
    v = torch.randn(2, 4, generator=generator).requires_grad_()
    assert q.abs().max() > modeling_nlpft_additive._FUSED_MAX_ABS
    fused = additive_scores(q, k, v, 4, False, "fused")
    naive = additive_scores(q, k, v, 4, False, "naive")
    torch.testing.assert_close(fused, naive)
    upstream = torch.randn_like(naive)
    fused_grads = torch.autograd.grad((fused * upstream).sum(), (q, k, v))
    naive_grads = torch.autograd.grad((naive * upstream).sum(), (q, k, v))
    for got, want in zip(fused_grads, naive_grads, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


@pytest.fixture
def fresh_kernel_cache(tmp_path, monkeypatch):
    """An empty kernel cache and a forgotten in-process kernel, restored afterwards."""
    monkeypatch.setenv("HF_NLPFT_KERNEL_CACHE", str(tmp_path / "kernels"))
    fused_cpu_kernel.cache_clear()
    yield tmp_path / "kernels"
    fused_cpu_kernel.cache_clear()
    monkeypatch.setattr(modeling_nlpft_additive, "_fused_kernel_unavailable_reason", None)


def test_fused_kernel_is_built_into_the_cache_once(fresh_kernel_cache):
    if fused_cpu_kernel() is None:
        pytest.skip(f"fused kernel unavailable here: {fused_kernel_unavailable_reason()}")
    built = sorted(path.name for path in fresh_kernel_cache.iterdir())
    assert len(built) == 1 and built[0].startswith("additive_scores_") and built[0].endswith(".so"), built
    stamp = (fresh_kernel_cache / built[0]).stat().st_mtime_ns
    fused_cpu_kernel.cache_clear()
    assert fused_cpu_kernel() is not None
    assert (fresh_kernel_cache / built[0]).stat().st_mtime_ns == stamp  # loaded from the cache, not rebuilt


def test_without_a_compiler_auto_falls_back_and_fused_says_why(fresh_kernel_cache, monkeypatch):
    monkeypatch.setenv("CC", str(fresh_kernel_cache / "no-such-compiler"))
    generator = torch.Generator().manual_seed(3)
    q, k = torch.randn(2, 1, 2, 5, 4, generator=generator)
    v = torch.randn(2, 4, generator=generator)
    torch.testing.assert_close(additive_scores(q, k, v, 2, False, "auto"), additive_scores(q, k, v, 2, False, "naive"))
    assert fused_cpu_kernel() is None
    with pytest.raises(RuntimeError, match="no-such-compiler"):
        additive_scores(q, k, v, 2, False, "fused")
    assert not list(fresh_kernel_cache.glob("*.so"))  # nothing half-built left behind


def test_default_impl_runs_under_bf16_autocast():
    torch.manual_seed(0)
    model = AdditiveAttentionForCausalLM(tiny_config())
    input_ids, attention_mask = right_padded_batch()
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.dtype == torch.bfloat16
    out.loss.backward()
    score_grad = model.model.layers[0].self_attn.score_vector.grad
    assert score_grad.dtype == torch.float32 and torch.isfinite(score_grad).all()

    naive = AdditiveAttentionForCausalLM(tiny_config(additive_attention_impl="naive"))
    naive.load_state_dict(model.state_dict())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = naive(input_ids, attention_mask=attention_mask).logits
    torch.testing.assert_close(out.logits.float(), reference.float(), atol=0.1, rtol=0.05)


# ---------------------------------------------------------------- masking


@pytest.mark.parametrize("head", [AdditiveAttentionForCausalLM, AdditiveAttentionForMaskedLM])
def test_padding_is_exact(head):
    torch.manual_seed(0)
    model = head(tiny_config()).eval()
    input_ids, attention_mask = right_padded_batch()
    batch = model(input_ids, attention_mask=attention_mask, output_hidden_states=True)
    for row in range(input_ids.shape[0]):
        length = int(attention_mask[row].sum())
        alone = model(input_ids[row : row + 1, :length], output_hidden_states=True)
        torch.testing.assert_close(batch.logits[row, :length], alone.logits[0])
        for layer_batch, layer_alone in zip(batch.hidden_states, alone.hidden_states, strict=True):
            torch.testing.assert_close(layer_batch[row, :length], layer_alone[0])


def test_left_padding_matches_unpadded_for_causal_lm():
    # Positions count real tokens only, so left-padded generation batches see the same positions.
    torch.manual_seed(0)
    model = AdditiveAttentionForCausalLM(tiny_config()).eval()
    input_ids = torch.randint(5, 64, (1, 6))
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), input_ids], dim=1)
    mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 6, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(padded, attention_mask=mask).logits[:, 3:], model(input_ids).logits)


def test_causal_lm_does_not_see_future_tokens():
    torch.manual_seed(0)
    model = AdditiveAttentionForCausalLM(tiny_config()).eval()
    input_ids = torch.randint(5, 64, (2, 10))
    changed = input_ids.clone()
    changed[:, 6] = (changed[:, 6] + 1) % 64
    original_logits = model(input_ids).logits
    changed_logits = model(changed).logits
    torch.testing.assert_close(changed_logits[:, :6], original_logits[:, :6])
    assert not torch.allclose(changed_logits[:, 6:], original_logits[:, 6:])


def test_masked_lm_is_bidirectional():
    torch.manual_seed(0)
    model = AdditiveAttentionForMaskedLM(tiny_config()).eval()
    input_ids = torch.randint(5, 64, (1, 10))
    changed = input_ids.clone()
    changed[:, 8] = (changed[:, 8] + 1) % 64
    assert not torch.allclose(model(input_ids).logits[:, 0], model(changed).logits[:, 0])


@pytest.mark.parametrize("head", [AdditiveAttentionForCausalLM, AdditiveAttentionForMaskedLM])
def test_output_attentions_are_masked_probabilities(head):
    torch.manual_seed(0)
    config = tiny_config()
    model = head(config).eval()
    input_ids, attention_mask = right_padded_batch()
    attentions = model(input_ids, attention_mask=attention_mask, output_attentions=True).attentions
    length = input_ids.shape[1]
    assert len(attentions) == config.num_hidden_layers
    for probs in attentions:
        assert probs.shape == (4, config.num_attention_heads, length, length)
        for row in range(4):
            real = int(attention_mask[row].sum())
            torch.testing.assert_close(probs[row, :, :real].sum(-1), torch.ones(config.num_attention_heads, real))
            assert torch.all(probs[row, :, :, real:] == 0)
        if head is AdditiveAttentionForCausalLM:
            assert torch.all(probs.triu(diagonal=1) == 0)


def test_sequence_longer_than_position_table_is_rejected():
    model = AdditiveAttentionModel(tiny_config(max_position_embeddings=8))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(torch.ones(1, 9, dtype=torch.long))


# ---------------------------------------------------------------- heads and training


@pytest.mark.parametrize("head", [AdditiveAttentionForCausalLM, AdditiveAttentionForMaskedLM])
def test_language_model_heads_train(head):
    torch.manual_seed(0)
    model = head(tiny_config()).train()
    input_ids, attention_mask = right_padded_batch()
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    out = model(input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (4, 9, 64)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_token_classification_trains_and_ignores_minus_100():
    torch.manual_seed(0)
    model = AdditiveAttentionForTokenClassification(tiny_config(num_labels=5))
    input_ids, attention_mask = right_padded_batch()
    labels = torch.randint(0, 5, input_ids.shape).masked_fill(attention_mask == 0, -100)
    out = model(input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (4, 9, 5)
    out.loss.backward()
    assert model.classifier.weight.grad is not None


@pytest.mark.parametrize(
    "head", [AdditiveAttentionForCausalLM, AdditiveAttentionForMaskedLM, AdditiveAttentionForTokenClassification]
)
def test_token_losses_honour_num_items_in_batch(head):
    # Trainer passes num_items_in_batch for gradient accumulation: the loss must become sum / num_items_in_batch.
    torch.manual_seed(0)
    model = head(tiny_config(num_labels=64)).eval()
    input_ids, attention_mask = right_padded_batch()
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    mean_loss = model(input_ids, attention_mask=attention_mask, labels=labels).loss
    counted = labels[:, 1:] if head is AdditiveAttentionForCausalLM else labels
    num_items = int((counted != -100).sum())
    summed = model(input_ids, attention_mask=attention_mask, labels=labels, num_items_in_batch=2 * num_items).loss
    torch.testing.assert_close(summed, mean_loss / 2)


def test_sequence_classifier_opts_out_of_loss_kwargs():
    # Its regression/multi-label losses ignore num_items_in_batch, so Trainer must scale for accumulation itself.
    assert AdditiveAttentionForSequenceClassification.accepts_loss_kwargs is False


@pytest.mark.parametrize(
    ("problem_type", "num_labels"),
    [("single_label_classification", 3), ("multi_label_classification", 3), ("regression", 1)],
)
def test_sequence_classification_problem_types(problem_type, num_labels):
    torch.manual_seed(0)
    model = AdditiveAttentionForSequenceClassification(tiny_config(num_labels=num_labels, problem_type=problem_type))
    input_ids, attention_mask = right_padded_batch()
    if problem_type == "single_label_classification":
        labels = torch.tensor([0, 2, 1, 0])
        expected = torch.nn.functional.cross_entropy
    elif problem_type == "multi_label_classification":
        labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
        expected = torch.nn.functional.binary_cross_entropy_with_logits
    else:
        labels = torch.tensor([0.5, -1.0, 2.0, 0.0])
        expected = lambda logits, target: torch.nn.functional.mse_loss(logits.squeeze(-1), target)  # noqa: E731
    out = model(input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (4, num_labels)
    torch.testing.assert_close(out.loss, expected(out.logits, labels))
    out.loss.backward()
    assert model.classifier.weight.grad is not None


@pytest.mark.parametrize("pooling", ["first", "last", "mean", "max", "attention"])
def test_pooled_classification_ignores_padding(pooling):
    torch.manual_seed(0)
    model = AdditiveAttentionForSequenceClassification(tiny_config(classifier_pooling=pooling, num_labels=3)).eval()
    input_ids, attention_mask = right_padded_batch(seed=1)
    batch_logits = model(input_ids, attention_mask=attention_mask).logits
    for row in range(input_ids.shape[0]):
        length = int(attention_mask[row].sum())
        torch.testing.assert_close(batch_logits[row], model(input_ids[row : row + 1, :length]).logits[0])
    has_pooler_weights = any(name.startswith("pooler.") for name, _ in model.named_parameters())
    assert has_pooler_weights == (pooling == "attention")


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = AdditiveAttentionForMaskedLM(tiny_config()).train()
    input_ids, attention_mask = right_padded_batch()
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    model(input_ids, attention_mask=attention_mask, labels=labels).loss.backward()
    plain = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    model.activation_checkpointing_enable()
    model(input_ids, attention_mask=attention_mask, labels=labels).loss.backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[name], msg=name)


def test_return_dict_false_gives_tuples():
    model = AdditiveAttentionModel(tiny_config()).eval()
    input_ids, attention_mask = right_padded_batch()
    as_tuple = model(input_ids, attention_mask=attention_mask, return_dict=False)
    torch.testing.assert_close(as_tuple[0], model(input_ids, attention_mask=attention_mask).last_hidden_state)


# ---------------------------------------------------------------- weights, loading, generation


@pytest.mark.parametrize("head", [AdditiveAttentionForCausalLM, AdditiveAttentionForMaskedLM])
def test_lm_decoder_stays_tied_after_save_and_load(head, tmp_path):
    torch.manual_seed(0)
    model = head(tiny_config())
    assert model.lm_head.decoder.weight is model.model.embeddings.word_embeddings.weight
    model.save_pretrained(tmp_path)
    loaded = head.from_pretrained(tmp_path)
    assert loaded.lm_head.decoder.weight is loaded.model.embeddings.word_embeddings.weight
    torch.testing.assert_close(loaded.lm_head.decoder.weight, model.lm_head.decoder.weight)


def test_untied_decoder_when_tie_word_embeddings_is_false():
    model = AdditiveAttentionForMaskedLM(tiny_config(tie_word_embeddings=False))
    assert model.lm_head.decoder.weight is not model.model.embeddings.word_embeddings.weight


def test_classifier_reuses_language_model_body(tmp_path):
    torch.manual_seed(0)
    lm = AdditiveAttentionForCausalLM(tiny_config())
    lm.save_pretrained(tmp_path)
    classifier = AdditiveAttentionForSequenceClassification.from_pretrained(tmp_path, num_labels=3)
    lm_body = lm.model.state_dict()
    for name, tensor in classifier.model.state_dict().items():
        torch.testing.assert_close(tensor, lm_body[name], msg=name)


def test_score_vectors_are_initialised():
    model = AdditiveAttentionForSequenceClassification(tiny_config(classifier_pooling="attention"))
    vectors = [layer.self_attn.score_vector for layer in model.model.layers] + [model.pooler.score_vector]
    for vector in vectors:
        assert torch.isfinite(vector).all() and 0 < vector.std() < 0.1


def test_logits_to_keep_selects_positions_and_generate_projects_only_the_last():
    torch.manual_seed(0)
    model = AdditiveAttentionForCausalLM(tiny_config(eos_token_id=None)).eval()
    prompt = torch.randint(5, 64, (2, 7))
    full = model(prompt).logits
    torch.testing.assert_close(model(prompt, logits_to_keep=1).logits, full[:, -1:])
    torch.testing.assert_close(model(prompt, logits_to_keep=torch.tensor([0, 4])).logits, full[:, [0, 4]])
    projected = []
    model.lm_head.register_forward_hook(lambda module, args, output: projected.append(output.shape[1]))
    model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=3, do_sample=False, pad_token_id=0)
    assert projected == [1, 1, 1]


def test_greedy_generate_reruns_the_prefix_deterministically():
    torch.manual_seed(0)
    model = AdditiveAttentionForCausalLM(tiny_config(eos_token_id=None)).eval()
    prompt = torch.randint(5, 64, (2, 4))
    generated = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6, do_sample=False)
    assert generated.shape == (2, 10)
    assert torch.equal(generated[:, :4], prompt)
    again = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6, do_sample=False)
    assert torch.equal(generated, again)
    # The same tokens as an explicit argmax loop over the full prefix.
    expected = prompt
    for _ in range(6):
        next_token = model(expected).logits[:, -1].argmax(-1, keepdim=True)
        expected = torch.cat([expected, next_token], dim=1)
    assert torch.equal(generated, expected)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    "overrides",
    [
        dict(hidden_size=18, num_attention_heads=4),
        dict(hidden_size=-16),
        dict(num_hidden_layers=0),
        dict(attention_chunk_size=0),
        dict(classifier_pooling="cls"),
        dict(additive_attention_impl="flash"),
        dict(hidden_dropout_prob=1.0),
        dict(classifier_dropout=-0.1),
    ],
)
def test_config_rejects_invalid_values(overrides):
    with pytest.raises(CONFIG_ERRORS):
        tiny_config(**overrides)


def test_config_rejects_num_labels_that_disagree_with_id2label():
    with pytest.raises(ValueError, match="num_labels"):
        tiny_config(num_labels=3, id2label={0: "neg", 1: "pos"})


def test_config_defaults_and_round_trip(tmp_path):
    config = tiny_config(classifier_pooling="attention")
    assert config.use_cache is False
    assert config.head_dim == 4
    assert set(config.auto_map) >= {"AutoConfig", "AutoModel", "AutoModelForCausalLM", "AutoModelForMaskedLM"}
    config.save_pretrained(tmp_path)
    loaded = AdditiveAttentionConfig.from_pretrained(tmp_path)
    assert loaded.classifier_pooling == "attention" and loaded.attention_chunk_size == 4
