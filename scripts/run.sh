#!/usr/bin/env bash
# scripts/run.sh: the README's main-job command. From a fresh clone it creates ./.venv, installs torch
# (CPU wheel, pinned) and ssdcore, then streams an SSD continuation from the bundled model pair with
# its statistics. Arguments are passed to `ssdcore generate` (default prompt: "def fibonacci(n):").
#   SSD_VENV=path  use/create that virtualenv instead of ./.venv
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SSD_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
if [ "${SSD_SKIP_INSTALL:-0}" != "1" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q torch==2.13.0
  python -m pip install -q .
fi
if [ "$#" -eq 0 ]; then
  set -- "def fibonacci(n):" --max-tokens 96 --stats
fi
exec ssdcore generate "$@"
