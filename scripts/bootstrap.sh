#!/usr/bin/env bash
# Creates ./.venv once and keeps it in step with pyproject.toml (idempotent; re-runs in a second).
# The CPU build of torch goes in first: an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${HF_NLPFT_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
stamp="$venv/.hf_nlpft-installed"
want="$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  echo "Setting up $venv (torch==2.13.0 CPU build, then hf-nlpft with its dev and corpora extras)..." >&2
  "$venv/bin/python" -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" >&2 || true
  "$venv/bin/python" -m pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  "$venv/bin/python" -m pip install -q -e ".[dev,corpora]" 2>&1 | grep -v "^WARNING: Location" >&2 || true
  "$venv/bin/python" -c "import torch, transformers, hf_nlpft" # fail here, not later, if the install broke
  echo "$want" > "$stamp"
fi
