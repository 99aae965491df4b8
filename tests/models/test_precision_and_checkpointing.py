"""bf16 and activation (gradient) checkpointing for every family, on the CPU, plus the `--bf16` and
`--activation_checkpointing` (alias `--gradient_checkpointing`) flags through `hf-nlpft finetune`.

Checkpointing is shown to take effect, not only to be harmless: a checkpointed layer runs its forward again
during backward. The count uses a forward *pre*-hook on a module inside the layer, because the recomputation
stops as soon as the last tensor backward needs is rebuilt, so an inner module's post-hook may never fire.
(The layer's own hooks stay outside the checkpoint by design, see GradientCheckpointingLayer.)

The RNN seq2seq family does not support checkpointing (its input-feeding decoder is a Python loop); it is in
the bf16 tests only.
"""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import pytest
import torch
import transformers.modeling_utils
from safetensors.torch import load_file

from hf_nlpft import (
    AdditiveAttentionConfig,
    AdditiveAttentionForCausalLM,
    AdditiveAttentionForMaskedLM,
    RnnConfig,
    RnnForCausalLM,
    RnnForMaskedLM,
    RnnSeq2SeqConfig,
    RnnSeq2SeqForConditionalGeneration,
)
from hf_nlpft.cli import main as cli_main

VOCAB = 64


def rnn(head, **overrides):
    values = dict(vocab_size=VOCAB, embedding_size=12, hidden_size=10, num_layers=2, dropout=0.0)
    return head(RnnConfig(**{**values, **overrides}))


def additive(head, **overrides):
    values = dict(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=4, intermediate_size=32,
                  max_position_embeddings=32, attention_chunk_size=4, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)
    return head(AdditiveAttentionConfig(**{**values, **overrides}))


def seq2seq(**overrides):
    values = dict(vocab_size=VOCAB, embedding_size=8, hidden_size=10, attention_size=6, encoder_num_layers=2,
                  decoder_num_layers=2, dropout=0.0)
    return RnnSeq2SeqForConditionalGeneration(RnnSeq2SeqConfig(**{**values, **overrides}))


# name -> (builder, the module inside each checkpointed layer whose forward is counted)
MODELS = {
    "lstm-clm": (partial(rnn, RnnForCausalLM, cell="lstm"), "rnn"),
    "gru-clm": (partial(rnn, RnnForCausalLM, cell="gru"), "rnn"),
    "rnn-clm": (partial(rnn, RnnForCausalLM, cell="rnn"), "rnn"),
    "bilstm-mlm": (partial(rnn, RnnForMaskedLM, cell="lstm", bidirectional=True), "rnn"),
    "additive-clm": (partial(additive, AdditiveAttentionForCausalLM), "self_attn"),
    "additive-mlm": (partial(additive, AdditiveAttentionForMaskedLM), "self_attn"),
}
CHECKPOINTED = ["lstm-clm", "gru-clm", "bilstm-mlm", "additive-clm", "additive-mlm"]


def batch(padded: bool, seed: int = 0) -> dict[str, torch.Tensor]:
    """4 sequences of 9 tokens; right padding to lengths 9, 6, 3, 1 (RNNs pack them), or none (the fast path)."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, VOCAB, (4, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    if padded:
        for row, length in enumerate([9, 6, 3, 1]):
            attention_mask[row, length:] = 0
            input_ids[row, length:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "labels": input_ids.masked_fill(attention_mask == 0, -100)}


def seq2seq_batch() -> dict[str, torch.Tensor]:
    inputs = batch(padded=True)
    labels = batch(padded=True, seed=1)["labels"][:, :5]
    return {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"], "labels": labels}


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- activation checkpointing


def train_step(model, inner: str, inputs) -> tuple[torch.Tensor, dict, int, int]:
    """Loss, gradients, and how often the inner modules ran forward during the forward and the backward pass."""
    calls = []
    hooks = [getattr(layer, inner).register_forward_pre_hook(lambda *_: calls.append(1)) for layer in model.model.layers]
    model.zero_grad()
    loss = model(**inputs).loss
    in_forward = len(calls)
    loss.backward()
    for hook in hooks:
        hook.remove()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, in_forward, len(calls) - in_forward


@pytest.mark.parametrize("name", CHECKPOINTED)
@pytest.mark.parametrize("padded", [True, False], ids=["padded", "full"])
def test_checkpointing_recomputes_each_layer_and_keeps_loss_and_gradients(name, padded):
    build, inner = MODELS[name]
    torch.manual_seed(0)
    model = build().train()
    inputs = batch(padded)
    loss, grads, forward_calls, backward_calls = train_step(model, inner, inputs)
    layers = len(model.model.layers)
    assert (forward_calls, backward_calls) == (layers, 0)

    model.activation_checkpointing_enable()  # what --gradient_checkpointing (--activation_checkpointing) calls
    assert all(layer.gradient_checkpointing for layer in model.model.layers)
    checkpointed_loss, checkpointed_grads, forward_calls, backward_calls = train_step(model, inner, inputs)
    assert (forward_calls, backward_calls) == (layers, layers)  # every layer ran again in backward
    torch.testing.assert_close(checkpointed_loss, loss)
    assert checkpointed_grads.keys() == grads.keys()
    for param, grad in grads.items():
        torch.testing.assert_close(checkpointed_grads[param], grad, msg=param)


def test_checkpointing_is_off_in_eval():
    model = rnn(RnnForCausalLM)
    with pytest.warns(FutureWarning):  # the Transformers 4 name still works
        model.gradient_checkpointing_enable()
    model.eval()
    loss, _, _, backward_calls = train_step(model, "rnn", batch(padded=True))
    assert backward_calls == 0 and torch.isfinite(loss)


# ---------------------------------------------------------------- bf16

BF16_REL_TOL = 1e-2  # measured: at most 2e-3 relative, for autocast and for bf16 weights


def fitted(model, inputs, steps: int = 10):
    """The model after a few float32 Adam steps on `inputs`: its loss is then well below log(VOCAB), the loss of
    a fresh model whatever its precision, so comparing precisions means something."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        model(**inputs).loss.backward()
        optimizer.step()
    model.zero_grad()
    return model


def bf16_cases():
    cases = {name: (build, partial(batch, True)) for name, (build, _) in MODELS.items()}
    # LM blocks have no padding: the RNNs take the unpacked fast path (where CPU autocast used to fail for LSTMs)
    cases["lstm-clm-full"] = (MODELS["lstm-clm"][0], partial(batch, False))
    cases["seq2seq-lstm"] = (partial(seq2seq, cell="lstm"), seq2seq_batch)
    cases["seq2seq-gru"] = (partial(seq2seq, cell="gru"), seq2seq_batch)
    return cases


BF16_CASES = bf16_cases()


@pytest.mark.parametrize("name", sorted(BF16_CASES))
def test_bf16_autocast_trains_close_to_float32(name):
    build, make_batch = BF16_CASES[name]
    torch.manual_seed(0)
    inputs = make_batch()
    model = fitted(build().train(), inputs)
    reference = model(**inputs).loss.item()
    assert reference < math.log(VOCAB) - 0.5
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**inputs)
    assert out.logits.dtype == torch.bfloat16  # autocast is really on
    out.loss.backward()
    assert out.loss.item() == pytest.approx(reference, rel=BF16_REL_TOL)
    for param_name, param in model.named_parameters():
        if param.grad is not None:  # master weights and their gradients stay float32
            assert param.grad.dtype == torch.float32 and torch.isfinite(param.grad).all(), param_name


@pytest.mark.parametrize("name", ["lstm-clm", "gru-clm", "additive-clm", "additive-mlm", "seq2seq-lstm"])
def test_bf16_model_runs_forward_and_generate(name):
    build, make_batch = BF16_CASES[name]
    torch.manual_seed(0)
    inputs = make_batch()
    model = fitted(build().train(), inputs).eval()
    reference = model(**inputs).loss.item()
    model.to(torch.bfloat16)
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits.dtype == torch.bfloat16
    assert out.loss.item() == pytest.approx(reference, rel=BF16_REL_TOL)
    if hasattr(model, "generate"):
        prompt = {"input_ids": inputs["input_ids"][:2, :4], "attention_mask": inputs["attention_mask"][:2, :4]}
        generated = model.generate(**prompt, max_new_tokens=5, do_sample=False, pad_token_id=0)
        assert generated.shape[0] == 2 and generated.shape[1] >= 4


# ---------------------------------------------------------------- the command line

FAMILY_ARGS = {
    "rnn": ["--arch", "rnn", "--config_overrides", "cell=lstm,embedding_size=16,hidden_size=16,num_layers=2"],
    "additive": ["--arch", "additive", "--config_overrides",
                 "hidden_size=16,num_hidden_layers=2,num_attention_heads=2,intermediate_size=32,"
                 "max_position_embeddings=32"],
}


@pytest.fixture(scope="module")
def topic_data(tmp_path_factory) -> Path:
    """A tiny two-topic text classification data set (JSONL train/validation)."""
    folder = tmp_path_factory.mktemp("topics")
    topics = {"sport": "the team wins the match and the fans sing", "money": "the bank raises rates and markets fall"}
    for split, count in (("train", 40), ("validation", 10)):
        rows = [{"text": " ".join(topics[label].split()[i % 4:]), "label": label}
                for i, label in enumerate(["sport", "money"] * (count // 2))]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return folder


def run_cli(argv: list[str]) -> int:
    try:
        return cli_main(argv)
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:`gradient_checkpointing` is deprecated:FutureWarning")
@pytest.mark.parametrize("family", sorted(FAMILY_ARGS))
@pytest.mark.parametrize("flag", ["--bf16", "--activation_checkpointing", "--gradient_checkpointing"])
def test_finetune_cli_with_bf16_or_checkpointing(family, flag, topic_data, tmp_path, monkeypatch):
    checkpoint_calls = []
    checkpoint = transformers.modeling_utils.checkpoint  # what activation_checkpointing_enable hands the layers

    def counting_checkpoint(*args, **kwargs):
        checkpoint_calls.append(1)
        return checkpoint(*args, **kwargs)

    monkeypatch.setattr(transformers.modeling_utils, "checkpoint", counting_checkpoint)
    output_dir = tmp_path / "model"
    argv = ["finetune", "--task", "text-classification", *FAMILY_ARGS[family], "--dataset_dir", str(topic_data),
            "--tokenizer_vocab_size", "100", "--max_seq_length", "16", "--max_steps", "3", "--learning_rate", "5e-3",
            "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16", "--logging_steps", "1",
            "--report_to", "none", "--disable_tqdm", "true", "--use_cpu", flag, "--output_dir", str(output_dir)]
    assert run_cli(argv) == 0
    losses = [entry["loss"] for entry in json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
              if "loss" in entry]
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    weights = load_file(output_dir / "model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}  # bf16 is compute only
    # 2 layers checkpointed in each of the 3 steps (--gradient_checkpointing is the deprecated name of
    # --activation_checkpointing in Transformers 5), and nothing at all without the flag
    assert len(checkpoint_calls) == (0 if flag == "--bf16" else 6)
