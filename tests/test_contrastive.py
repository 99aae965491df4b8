"""Unit tests of the SimCSE pieces in hf_nlpft.contrastive, on tiny real models of both families (no mocks).

The end-to-end `hf-nlpft pretrain --objective contrastive` runs are in test_pretrain.py.
"""

from __future__ import annotations

import math

import datasets
import pytest
import torch
from transformers import DataCollatorWithPadding, TrainingArguments

import hf_nlpft
from hf_nlpft.contrastive import (
    ContrastiveTrainer,
    alignment_and_uniformity,
    info_nce_loss,
    sentence_embeddings,
    two_views,
)

SENTENCES = [
    "The bank raised interest rates again.",
    "Shares fell sharply in early trading.",
    "The team won the cup final on penalties.",
    "A new film opens in cinemas this week.",
    "Ministers debated the education bill.",
    "Broadband prices dropped across Europe.",
    "The striker signed a three-year contract.",
    "Oil prices hit a record high.",
]


@pytest.fixture(scope="module")
def tokenizer():
    return hf_nlpft.train_tokenizer(SENTENCES * 3, vocab_size=200, model="char", model_max_length=128)


def tiny_model(family: str, vocab_size: int, dropout: float = 0.1):
    torch.manual_seed(0)
    if family == "rnn":
        config = hf_nlpft.RnnConfig(vocab_size=vocab_size, embedding_size=16, hidden_size=16, num_layers=1,
                                    bidirectional=True, dropout=dropout)
    else:
        config = hf_nlpft.AdditiveAttentionConfig(
            vocab_size=vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=128, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
        )
    return hf_nlpft.models.AUTO_HEADS[type(config)][hf_nlpft.models.AutoModel](config)


def test_info_nce_loss_matches_cross_entropy_over_cosines():
    torch.manual_seed(0)
    first, second = torch.randn(5, 8), torch.randn(5, 8)
    loss, logits = info_nce_loss(first, second, temperature=0.1)
    cosines = torch.nn.functional.cosine_similarity(first[:, None], second[None], dim=-1)
    assert torch.allclose(logits, cosines / 0.1, atol=1e-5)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(cosines / 0.1, torch.arange(5)).item())
    # Identical views are their own best match: the loss falls towards 0 as the temperature falls.
    same_loss, same_logits = info_nce_loss(first, first, temperature=0.01)
    assert (same_logits.argmax(-1) == torch.arange(5)).all()
    assert same_loss.item() < 0.05 < loss.item()


def test_alignment_and_uniformity_bounds():
    vectors = torch.eye(4)
    assert alignment_and_uniformity(vectors, vectors)[0] == pytest.approx(0.0)
    assert alignment_and_uniformity(vectors, -vectors)[0] == pytest.approx(4.0)  # antipodal unit vectors
    # Orthogonal unit vectors are sqrt(2) apart: log E exp(-2 * 2) = -4.
    assert alignment_and_uniformity(vectors, vectors)[1] == pytest.approx(-4.0)
    assert alignment_and_uniformity(3 * vectors, vectors)[0] == pytest.approx(0.0)  # normalised first
    assert math.isnan(alignment_and_uniformity(vectors[:1], vectors[:1])[1])  # no pair to measure


@pytest.mark.parametrize("family", ["rnn", "additive"])
def test_sentence_embeddings_ignore_padding(family, tokenizer):
    model = tiny_model(family, len(tokenizer)).eval()
    alone = tokenizer([SENTENCES[1]], return_tensors="pt")
    batch = tokenizer([SENTENCES[0] * 2, SENTENCES[1]], padding=True, return_tensors="pt")
    assert batch["attention_mask"][1].sum() < batch["attention_mask"].shape[1]  # the second one is padded
    with torch.no_grad():
        single = sentence_embeddings(model, alone["input_ids"], alone["attention_mask"])
        padded = sentence_embeddings(model, batch["input_ids"], batch["attention_mask"])
    assert padded.shape == (2, model.config.hidden_size * (2 if family == "rnn" else 1))
    assert torch.allclose(single[0], padded[1], atol=1e-5)


@pytest.mark.parametrize("family", ["rnn", "additive"])
def test_two_views_differ_only_through_dropout(family, tokenizer):
    model = tiny_model(family, len(tokenizer))
    batch = tokenizer(SENTENCES[:4], padding=True, return_tensors="pt")
    with torch.no_grad():
        first, second = two_views(model.train(), batch)
        assert first.shape == second.shape and not torch.allclose(first, second)
        first, second = two_views(model.eval(), batch)
        assert torch.allclose(first, second, atol=1e-6)


@pytest.mark.parametrize("family", ["rnn", "additive"])
def test_trainer_loss_backpropagates_and_evaluate_keeps_the_rng(family, tokenizer, tmp_path):
    model = tiny_model(family, len(tokenizer))
    dataset = datasets.Dataset.from_dict(dict(tokenizer(SENTENCES)))
    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=4, report_to="none",
                             disable_tqdm=True, seed=3, dataloader_pin_memory=False)
    trainer = ContrastiveTrainer(model=model, args=args, eval_dataset=dataset, processing_class=tokenizer,
                                 data_collator=DataCollatorWithPadding(tokenizer), temperature=0.05)
    assert trainer.temperature == 0.05

    batch = DataCollatorWithPadding(tokenizer)(list(dataset))
    loss = trainer.compute_loss(model.train(), batch)
    loss.backward()
    assert math.isfinite(loss.item())
    assert model.get_input_embeddings().weight.grad.abs().sum() > 0

    model.eval()
    rng_before = torch.random.get_rng_state()
    metrics = trainer.evaluate()
    # Views come from a private, seeded RNG stream: training's RNG (and so exact resume) is untouched, ...
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    assert not model.training  # ... and the model is back in the mode it was in.
    assert trainer.evaluate() == metrics  # reproducible
    assert metrics["eval_samples"] == len(SENTENCES)
    assert 0.0 <= metrics["eval_retrieval_accuracy"] <= 1.0
    assert 0.0 <= metrics["eval_alignment"] <= 4.0 and -8.0 <= metrics["eval_uniformity"] <= 0.0
    assert math.isfinite(metrics["eval_loss"])
