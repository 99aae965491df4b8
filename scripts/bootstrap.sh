#!/usr/bin/env bash
# Creates ./.venv once and keeps it in step with pyproject.toml (idempotent; re-runs in a second).
# The CPU build of torch goes in first: an unpinned torch would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

# The bible_en_es corpus reads two public-domain Bibles from Debian packages (installed once, as root).
if [ ! -f /usr/share/sword/mods.d/engWEB2015eb.conf ] || [ ! -f /usr/share/sword/mods.d/spaRV1909eb.conf ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Installing the Debian packages sword-text-web and sword-text-sparv (bible_en_es corpus)..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sword-text-web sword-text-sparv) >&2 \
      || echo "warning: could not install sword-text-web/sword-text-sparv; bible_en_es will be unavailable" >&2
  else
    echo "note: bible_en_es needs: sudo apt-get install sword-text-web sword-text-sparv" >&2
  fi
fi
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
