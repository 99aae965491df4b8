"""Both families through the Auto classes: registration, portable saved folders, remote code, head transfer."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
)

import hf_nlpft

AUTO_CLASSES = {
    "AutoModel": AutoModel,
    "AutoModelForCausalLM": AutoModelForCausalLM,
    "AutoModelForMaskedLM": AutoModelForMaskedLM,
    "AutoModelForSequenceClassification": AutoModelForSequenceClassification,
    "AutoModelForTokenClassification": AutoModelForTokenClassification,
}


def rnn_config(direction: str):
    return hf_nlpft.RnnConfig(
        vocab_size=48, embedding_size=8, hidden_size=6, num_layers=2, dropout=0.0, num_labels=3,
        bidirectional=direction == "bidirectional",
    )


def additive_config(direction: str):
    return hf_nlpft.AdditiveAttentionConfig(
        vocab_size=48, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
        max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=3,
    )


# family -> (config factory, {direction: heads that a folder of that direction serves})
FAMILIES = {
    "nlpft_rnn": (
        rnn_config,
        "rnn",
        {
            "unidirectional": ["AutoModel", "AutoModelForCausalLM", "AutoModelForSequenceClassification",
                               "AutoModelForTokenClassification"],
            "bidirectional": ["AutoModel", "AutoModelForMaskedLM", "AutoModelForSequenceClassification",
                              "AutoModelForTokenClassification"],
        },
    ),
    "nlpft_additive": (
        additive_config,
        "additive",
        {"bidirectional": list(AUTO_CLASSES)},
    ),
}
CASES = [(family, direction) for family, (_, _, dirs) in FAMILIES.items() for direction in dirs]
INPUT_IDS = torch.tensor([[1, 7, 9, 11, 13, 2], [1, 5, 6, 2, 0, 0]])
ATTENTION_MASK = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])


def first_output(model) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        out = model(input_ids=INPUT_IDS, attention_mask=ATTENTION_MASK)
    return out.logits if "logits" in out else out.last_hidden_state


def save_family(family: str, direction: str, folder: Path) -> dict[str, torch.Tensor]:
    """Save one model per head (all sharing a base) and return each head's outputs on fixed inputs."""
    make_config, _, heads = FAMILIES[family]
    outputs = {}
    for auto_name in heads[direction]:
        torch.manual_seed(0)
        model = AUTO_CLASSES[auto_name].from_config(make_config(direction))
        model.save_pretrained(folder / auto_name)
        outputs[auto_name] = first_output(model)
    return outputs


@pytest.mark.parametrize(("family", "direction"), CASES)
def test_auto_classes_build_our_classes(family, direction):
    make_config, _, heads = FAMILIES[family]
    config = make_config(direction)
    assert type(AutoConfig.for_model(family)) is type(config)
    for auto_name in heads[direction]:
        model = AUTO_CLASSES[auto_name].from_config(config)
        assert type(model).__module__.startswith("hf_nlpft.models.")


@pytest.mark.parametrize(("family", "direction"), CASES)
def test_saved_folder_is_portable(tmp_path, family, direction):
    _, package_dir, heads = FAMILIES[family]
    outputs = save_family(family, direction, tmp_path)
    source_dir = Path(hf_nlpft.__file__).parent / "models" / package_dir
    for auto_name in heads[direction]:
        folder = tmp_path / auto_name
        config = json.loads((folder / "config.json").read_text())
        assert config["model_type"] == family
        # Every Auto class of the family, not only the saved one, so any head loads as remote code.
        assert set(config["auto_map"]) == {"AutoConfig", *AUTO_CLASSES}
        assert (folder / "model.safetensors").exists()
        assert not list(folder.glob("*.bin"))
        python_files = sorted(p.name for p in folder.glob("*.py"))
        assert python_files == [f"configuration_{family}.py", f"modeling_{family}.py"]
        for name in python_files:  # the remote code is exactly the package's own files
            assert (folder / name).read_bytes() == (source_dir / name).read_bytes()
        reloaded = AUTO_CLASSES[auto_name].from_pretrained(folder)  # no trust_remote_code: registered locally
        assert type(reloaded).__module__.startswith("hf_nlpft.models.")
        torch.testing.assert_close(first_output(reloaded), outputs[auto_name])


REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["hf_nlpft"] = None  # as on a machine that has never heard of hf_nlpft
    try:
        import hf_nlpft  # noqa: F401
        raise SystemExit("hf_nlpft must not be importable here")
    except ImportError:
        pass
    import torch, transformers
    folder, result_file, heads = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    inputs = dict(input_ids=torch.tensor({ids}), attention_mask=torch.tensor({mask}))
    results = {{}}
    for name in heads:
        model = getattr(transformers, name).from_pretrained(f"{{folder}}/{{name}}", trust_remote_code=True).eval()
        assert not type(model).__module__.startswith("hf_nlpft"), type(model).__module__
        with torch.no_grad():
            out = model(**inputs)
        results[name] = out.logits if "logits" in out else out.last_hidden_state
    torch.save(results, result_file)
    """
)


@pytest.mark.parametrize(("family", "direction"), CASES)
def test_folder_loads_as_remote_code_without_hf_nlpft(tmp_path, family, direction):
    _, _, heads = FAMILIES[family]
    outputs = save_family(family, direction, tmp_path)
    script = tmp_path / "load_remote.py"
    script.write_text(REMOTE_CODE_SCRIPT.format(ids=INPUT_IDS.tolist(), mask=ATTENTION_MASK.tolist()))
    result_file = tmp_path / "remote_outputs.pt"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(result_file), ",".join(heads[direction])],
        cwd=tmp_path, env=env, check=True, timeout=300,
    )
    remote = torch.load(result_file)
    for name in heads[direction]:
        # Same weights and code; only float summation order may differ between processes (seen: 2e-10).
        torch.testing.assert_close(remote[name], outputs[name], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("family", "direction"), CASES)
def test_lm_checkpoint_loads_into_task_heads(tmp_path, family, direction):
    make_config, _, heads = FAMILIES[family]
    lm_name = "AutoModelForCausalLM" if "AutoModelForCausalLM" in heads[direction] else "AutoModelForMaskedLM"
    torch.manual_seed(0)
    lm = AUTO_CLASSES[lm_name].from_config(make_config(direction))
    lm.save_pretrained(tmp_path / "lm")
    lm_base = {k: v for k, v in lm.state_dict().items() if k.startswith("model.")}
    for head_name in ["AutoModelForSequenceClassification", "AutoModelForTokenClassification"]:
        head, info = AUTO_CLASSES[head_name].from_pretrained(tmp_path / "lm", output_loading_info=True)
        state = head.state_dict()
        for key, value in lm_base.items():  # the shared weights are reused exactly
            assert torch.equal(state[key], value), key
        # The load report names the new head and the dropped LM head.
        assert any(key.startswith("classifier.") for key in info["missing_keys"])
        assert any(key.startswith("lm_head.") for key in info["unexpected_keys"])
    base = AutoModel.from_pretrained(tmp_path / "lm")
    for key, value in base.state_dict().items():
        assert torch.equal(value, lm_base[f"model.{key}"])
