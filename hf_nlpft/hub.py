"""`hf-nlpft push`: share a trained model folder on the Hugging Face Hub, checked to load there first.

    hf-nlpft push runs/bbc-classifier user/bbc-lstm-classifier [--private] [--revision BRANCH]
    hf-nlpft finetune ... --output_dir runs/bbc-classifier --push_to_hub --hub_model_id user/bbc-lstm-classifier

The token and Hub address come from the usual places: `hf auth login` or `HF_TOKEN`, and `HF_ENDPOINT`.
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

from .training import TOKENIZER_STAGING_DIR, UsageError, setup_logging

logger = logging.getLogger(__name__)

# Left out of the upload: resumable checkpoints, the pickled TrainingArguments (and any other pickle), a staged
# tokenizer of an unfinished run, and TensorBoard logs. The weights travel as model.safetensors.
# (fnmatch patterns on the relative path, whose `*` also matches `/`.)
IGNORE_PATTERNS = ["checkpoint-*", f"{TOKENIZER_STAGING_DIR}/*", "*.bin", "*.pt", "*.pth", "runs/*"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")

# Runs in a fresh interpreter where `hf_nlpft` cannot be imported, as on the machine of someone who downloads the
# model: the folder must load through its own configuration_*.py / modeling_*.py alone.
REMOTE_LOAD_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["hf_nlpft"] = None
    from pathlib import Path
    import transformers

    folder = sys.argv[1]
    config = transformers.AutoConfig.from_pretrained(folder, trust_remote_code=True)
    architecture = (getattr(config, "architectures", None) or [None])[0]
    auto_map = getattr(config, "auto_map", None) or {}
    names = [name for name, target in auto_map.items()
             if name != "AutoConfig" and isinstance(target, str) and target.rsplit(".", 1)[-1] == architecture]
    if not names:
        raise SystemExit(f"config.json's auto_map has no Auto class for its architecture {architecture!r}")
    model = getattr(transformers, names[0]).from_pretrained(folder, trust_remote_code=True)
    if type(model).__name__ != architecture:
        raise SystemExit(f"{names[0]} built {type(model).__name__}, not {architecture}")
    if any((Path(folder) / name).is_file() for name in sys.argv[2:]):  # the tokenizer file names
        transformers.AutoTokenizer.from_pretrained(folder)
    """
)


def check_loads_as_remote_code(folder: str | Path) -> None:
    """Load the folder's config, model (through its auto_map) and tokenizer in a process without hf_nlpft."""
    folder = Path(folder)
    # Offline: everything needed must be in the folder, and nothing is fetched from the Hub while checking.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_LOAD_SCRIPT, str(folder.resolve()), *TOKENIZER_FILES],
        cwd=folder, env=env, capture_output=True, text=True, timeout=600,
    )
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        last = lines[-1].strip() if lines else f"exit status {result.returncode}"
        raise UsageError(
            f"{folder} does not load without hf_nlpft (trust_remote_code=True), so it would not load from the "
            f"Hub: {last}"
        )


def require_online(what: str) -> None:
    """Offline mode would only fail at the first request, after the (slow) checks or a whole training run."""
    if constants.is_offline_mode():
        raise UsageError(f"{what} needs the Hub, but HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: unset it")


def check_folder(folder: Path) -> bool:
    """Refuse what is not a saved model (or PEFT adapter) folder; True for an adapter folder."""
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder")
    if (folder / "adapter_config.json").is_file():
        if not (folder / "adapter_model.safetensors").is_file():
            raise UsageError(f"{folder} has adapter_config.json but no adapter_model.safetensors")
        base = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
        if base and Path(base).exists():  # others can only load the adapter if its base model is on the Hub too
            logger.warning("The adapter's base model is the local folder %s: push it too and set "
                           "base_model_name_or_path in adapter_config.json to its repo id", base)
        return True
    missing = [name for name in ("config.json", "model.safetensors") if not (folder / name).is_file()]
    if missing:
        raise UsageError(f"{folder} is not a saved model folder: it lacks {' and '.join(missing)}")
    return False


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str = "Upload model trained with hf_nlpft",
) -> str:
    """Check the folder, then create the repo (and branch) if needed and upload it in one commit; returns its URL."""
    folder = Path(folder)
    is_adapter = check_folder(folder)
    require_online(f"Pushing {folder}")
    if not is_adapter:  # an adapter's code is the base model's: nothing of its own to check
        check_loads_as_remote_code(folder)
    api = HfApi(token=token)
    # private=None leaves a new repo to the account's default visibility (public unless the org says otherwise).
    repo_url = api.create_repo(repo_id, private=private or None, exist_ok=True, repo_type="model")
    if revision and revision != "main":
        api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
    commit = api.upload_folder(
        folder_path=folder, repo_id=repo_id, repo_type="model", revision=revision,
        commit_message=commit_message, ignore_patterns=IGNORE_PATTERNS,
    )
    logger.info("Pushed %s to %s at commit %s (pin it with revision=%r)", folder, repo_url, commit.oid, commit.oid)
    return str(repo_url)


def take_push_request(training_args) -> str | None:
    """Turn the Trainer's own pushing off and return the repo to push the finished folder to (None: no push).

    The Trainer would create the repo when built and push at every save; one checked push of the final folder,
    model card and plots included, is what gets shared instead. Checked before any data is read.
    """
    if not training_args.push_to_hub:
        return None
    if not training_args.hub_model_id:
        raise UsageError("--push_to_hub needs --hub_model_id user/name")
    require_online("--push_to_hub")
    training_args.push_to_hub = False
    return training_args.hub_model_id


def push_trained(training_args, repo_id: str) -> str:
    """The end-of-run push of `--output_dir` requested by --push_to_hub."""
    output_dir = training_args.output_dir
    try:
        return push_folder(output_dir, repo_id, private=bool(training_args.hub_private_repo),
                           revision=getattr(training_args, "hub_revision", None), token=training_args.hub_token)
    except Exception:
        logger.error("The push failed; the model is saved in %s. Retry with: hf-nlpft push %s %s",
                     output_dir, output_dir, repo_id)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hf-nlpft push",
        description="Upload a trained model folder (an --output_dir) to the Hugging Face Hub. It is first loaded "
        "without hf_nlpft, as remote code, to check that it will load from the Hub.",
    )
    parser.add_argument("output_dir", help="the folder written by pretrain or finetune")
    parser.add_argument("repo_id", help="the Hub model repo, user/name or org/name (created if missing)")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--revision", default=None, help="branch to push to (created from main if missing)")
    parser.add_argument("--commit_message", default="Upload model trained with hf_nlpft")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    setup_logging()
    try:
        url = push_folder(args.output_dir, args.repo_id, private=args.private, revision=args.revision,
                          commit_message=args.commit_message)
    except (HfHubHTTPError, OfflineModeIsEnabled) as err:  # no token, no rights, offline: say so without a traceback
        print(f"hf-nlpft push: error: {err}", file=sys.stderr)
        return 1
    print(f"Pushed {args.output_dir} to {url}")
    return 0
