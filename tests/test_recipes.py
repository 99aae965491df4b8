"""Every YAML recipe in scripts/recipes parses with its command's arguments and describes a buildable model.

Nothing is trained here: the recipes are minutes-to-hours runs, checked for the mistakes that would otherwise
only show when one is launched (a misspelt flag, an unknown config field, an objective the model cannot serve).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, TrainingArguments

from hf_nlpft.arguments import DataArguments, ModelArguments, OutputArguments, parse_args
from hf_nlpft.data import list_corpora
from hf_nlpft.models import AUTO_HEADS
from hf_nlpft.pretrain import PretrainArguments, build_model_config

RECIPES = sorted((Path(__file__).resolve().parent.parent / "scripts" / "recipes").glob("*.yaml"))
PRETRAIN_RECIPES = [path for path in RECIPES if path.name.startswith("pretrain_")]
PRETRAIN_TYPES = (ModelArguments, DataArguments, PretrainArguments, OutputArguments, TrainingArguments)
AUTO_CLASS = {"clm": AutoModelForCausalLM, "mlm": AutoModelForMaskedLM, "contrastive": AutoModel}


def test_the_pretraining_recipes_are_there():
    names = {path.name for path in PRETRAIN_RECIPES}
    assert {
        "pretrain_lstm_clm_bbc_news.yaml",
        "pretrain_additive_mlm_bbc_news.yaml",
        "pretrain_lstm_clm_peoples_daily.yaml",
        "pretrain_additive_mlm_peoples_daily.yaml",
        "pretrain_gru_contrastive_bbc_news.yaml",
    } <= names


@pytest.mark.parametrize("path", PRETRAIN_RECIPES, ids=lambda path: path.stem)
def test_pretrain_recipe_parses_and_builds(path):
    text = path.read_text(encoding="utf-8")
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert text.startswith("# ") and any("CPU" in line for line in header), "start with what it trains and how long"

    model_args, data_args, pretrain_args, _, training_args = parse_args(PRETRAIN_TYPES, [str(path)])
    # The file's own values arrive (not the dataclass defaults), and later flags still override them.
    values = yaml.safe_load(text)
    assert training_args.max_steps == values["max_steps"]
    assert parse_args(PRETRAIN_TYPES, [str(path), "--max_steps", "7"])[4].max_steps == 7

    assert data_args.dataset_name in list_corpora()
    assert Path(training_args.output_dir).name == path.stem
    assert training_args.report_to in ([], ["none"], "none")
    assert training_args.save_total_limit == 2

    # What `hf-nlpft pretrain` checks before reading any data, and a model of the size the header promises.
    config = build_model_config(model_args, pretrain_args)
    length = data_args.max_seq_length if pretrain_args.objective == "contrastive" else data_args.block_size
    assert length <= getattr(config, "max_position_embeddings", length)
    config.vocab_size = model_args.tokenizer_vocab_size
    model = AUTO_HEADS[type(config)][AUTO_CLASS[pretrain_args.objective]](config)
    assert 1_000_000 <= model.num_parameters() <= 10_000_000
