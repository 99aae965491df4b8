"""Saved folders (model + tokenizer) work with the standard Transformers pipelines, for both families."""

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    pipeline,
)

import hf_nlpft

TEXTS = [
    "the markets rose sharply after the bank cut interest rates",
    "the striker scored twice as the club won the cup final",
    "the minister said the election would be held in may",
    "the film won three awards at the festival last night",
    "new software lets phones share files without a network",
] * 4
LABELS = ["business", "sport", "politics", "entertainment"]


@pytest.fixture(scope="module")
def tokenizer():
    return hf_nlpft.train_tokenizer(TEXTS, vocab_size=200, model="wordpiece", min_frequency=1)


def family_config(family: str, tokenizer, **overrides):
    ids = dict(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, mask_token_id=tokenizer.mask_token_id,
    )
    ids.update(overrides)
    overrides = {}
    if family == "rnn":
        return hf_nlpft.RnnConfig(embedding_size=16, hidden_size=16, num_layers=1, **ids, **overrides)
    return hf_nlpft.AdditiveAttentionConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
        **ids, **overrides,
    )


def save(model, tokenizer, folder):
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("family", ["rnn", "additive"])
def test_text_classification_pipeline(tmp_path, tokenizer, family):
    torch.manual_seed(0)
    config = family_config(family, tokenizer, id2label=dict(enumerate(LABELS)), label2id={name: i for i, name in enumerate(LABELS)})
    folder = save(AutoModelForSequenceClassification.from_config(config), tokenizer, tmp_path)
    classify = pipeline("text-classification", model=folder, top_k=None)
    scores = classify("the club won the final")[0]
    assert {entry["label"] for entry in scores} == set(LABELS)
    assert sum(entry["score"] for entry in scores) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("family", ["rnn", "additive"])
def test_token_classification_pipeline(tmp_path, tokenizer, family):
    torch.manual_seed(0)
    tags = ["O", "B-ORG", "I-ORG"]
    config = family_config(family, tokenizer, id2label=dict(enumerate(tags)), label2id={t: i for i, t in enumerate(tags)})
    folder = save(AutoModelForTokenClassification.from_config(config), tokenizer, tmp_path)
    tagger = pipeline("token-classification", model=folder, aggregation_strategy="none", ignore_labels=[])
    entities = tagger("the bank cut rates")
    words = [entity["word"] for entity in entities]
    assert "bank" in words and all(entity["entity"] in tags for entity in entities)
    assert all(0 <= entity["start"] < entity["end"] for entity in entities)


@pytest.mark.parametrize("family", ["rnn", "additive"])
def test_fill_mask_pipeline(tmp_path, tokenizer, family):
    torch.manual_seed(0)
    overrides = {"bidirectional": True} if family == "rnn" else {}
    folder = save(AutoModelForMaskedLM.from_config(family_config(family, tokenizer, **overrides)), tokenizer, tmp_path)
    fill = pipeline("fill-mask", model=folder, top_k=3)
    predictions = fill(f"the bank cut interest {tokenizer.mask_token}")
    assert len(predictions) == 3
    assert predictions[0]["score"] >= predictions[1]["score"] >= predictions[2]["score"]


@pytest.mark.parametrize("family", ["rnn", "additive"])
def test_text_generation_pipeline(tmp_path, tokenizer, family):
    torch.manual_seed(0)
    folder = save(AutoModelForCausalLM.from_config(family_config(family, tokenizer, eos_token_id=None)), tokenizer, tmp_path)
    generate = pipeline("text-generation", model=folder)
    first = generate("the bank", max_new_tokens=5, do_sample=False)[0]["generated_text"]
    again = generate("the bank", max_new_tokens=5, do_sample=False)[0]["generated_text"]
    assert first.startswith("the bank") and len(first) > len("the bank")
    assert first == again
