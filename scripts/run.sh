#!/usr/bin/env bash
# scripts/run.sh: the README's main-job command. From a fresh clone it creates ./.venv, installs torch
# (CPU wheel, pinned) and ssdcore with its serve and bench extras (so every command of the README
# works in that venv), then streams an SSD continuation from the bundled model pair with
# its statistics. Arguments are passed to `ssdcore generate` (default prompt: "def fibonacci(n):").
#   SSD_VENV=path  use/create that virtualenv instead of ./.venv
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/venv.sh
. scripts/venv.sh "[serve,bench]"
if [ "$#" -eq 0 ]; then
  set -- "def fibonacci(n):" --max-tokens 96 --stats
fi
exec ssdcore generate "$@"
