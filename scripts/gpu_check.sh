#!/usr/bin/env bash
# scripts/gpu_check.sh: the GPU check of ssdcore, on a machine with nvcc and a CUDA GPU, in under 8 minutes.
#
# Stages (each under its own timeout, all under one 8-minute deadline):
#   preflight  nvcc, a visible GPU (nvidia-smi) and a CUDA-enabled torch; fails loudly otherwise
#   build      the extension with the CUDA kernels: the layered CMake build's module target `_core`
#              (cmake -DSSD_CUDA=ON -DSSD_BUILD_PYTHON=ON -DSSD_BUILD_TESTS=OFF, archs 80;90, static
#              cudart; --pip: pip install of the package with the same settings), staged with the tree's
#              python/ssdcore under build/gpu_check/pypath; checks the module imports with its kernels
#   tests      the GPU tests: pytest -m gpu (CUDA graphs on vs off, greedy ssd == ar on CUDA, CUDA
#              verification == the CPU reference, in the engine and kernel by kernel)
#   bench      ar / sd / ssd tokens/s on the bundled pair, both models on cuda:0 (ssdcore.bench.bench, no plot)
# Writes under $OUT (default ./gpu_check_out): <stage>.log, pytest.xml, bench.json and results.json
# (per stage: status and seconds; the device; the benchmark's tokens/s). Exits non-zero when a stage
# fails. Options: --dry-run (print the stages and exit), --pip (build with pip instead of cmake),
# --only=STAGE[,STAGE] (run just those stages, e.g. --only=build on a machine with nvcc but no GPU).
# Environment: PYTHON (default python3, which must have torch with CUDA, pybind11 and pytest),
# CUDA_ARCHS (default "80;90"), JOBS (default nproc), PYBIND11_DIR (pybind11's CMake directory).
set -uo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-./gpu_check_out}"
PYTHON="${PYTHON:-python3}"
PYBIND11_DIR="${PYBIND11_DIR:-}"
CUDA_ARCHS="${CUDA_ARCHS:-80;90}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 4)}"
DEADLINE_S=480
BUILD_DIR=build/gpu_check
PYPATH="$BUILD_DIR/pypath"
DRY_RUN=0
USE_PIP=0
ONLY=""
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    --pip) USE_PIP=1 ;;
    --only=*) ONLY=",${arg#--only=}," ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$arg' (allowed: --dry-run, --pip, --only=STAGE[,STAGE], --help)" >&2; exit 2 ;;
  esac
done

# name, timeout in seconds, command (a shell function below); the timeouts sum to the deadline
ALL_STAGES=("preflight 30 stage_preflight" "build 240 stage_build" "tests 120 stage_tests" "bench 90 stage_bench")
STAGES=()
for s in "${ALL_STAGES[@]}"; do
  if [ -z "$ONLY" ] || [[ "$ONLY" == *",${s%% *},"* ]]; then STAGES+=("$s"); fi
done
[ "${#STAGES[@]}" -gt 0 ] || { echo "gpu_check: --only names no stage (allowed: preflight, build, tests, bench)" >&2; exit 2; }

die() { echo "gpu_check: FAILED: $*" >&2; exit 1; }

stage_preflight() {
  local nvcc
  nvcc="$(command -v nvcc || true)"
  [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
  [ -n "$nvcc" ] || { echo "no nvcc: install the CUDA toolkit or put nvcc on PATH"; return 1; }
  "$nvcc" --version | tail -1
  command -v nvidia-smi >/dev/null || { echo "no nvidia-smi: no NVIDIA driver on this machine"; return 1; }
  nvidia-smi -L || { echo "nvidia-smi sees no GPU"; return 1; }
  "$PYTHON" - <<'EOF' || return 1
import sys
try:
    import torch
except ImportError:
    sys.exit("python has no torch: install a CUDA build of torch")
print("torch", torch.__version__, "CUDA", torch.version.cuda)
if not torch.cuda.is_available():
    sys.exit("torch.cuda.is_available() is False: a CPU-only torch, or no usable GPU")
print("device:", torch.cuda.get_device_name(0))
EOF
}

stage_build() {
  local nvcc
  nvcc="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)"
  [ -x "$nvcc" ] || { echo "no nvcc: install the CUDA toolkit or put nvcc on PATH"; return 1; }
  rm -rf "$PYPATH" && mkdir -p "$PYPATH/ssdcore"
  if [ "$USE_PIP" = 1 ]; then
    "$PYTHON" -m pip install --no-deps --no-build-isolation --target "$PYPATH" . \
      -C cmake.define.SSD_CUDA=ON -C "cmake.define.CMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHS" \
      -C "cmake.define.CMAKE_CUDA_COMPILER=$nvcc" || return 1
  else
    local pybind_dir
    pybind_dir="${PYBIND11_DIR:-$("$PYTHON" -m pybind11 --cmakedir)}" ||
      { echo "python has no pybind11: pip install pybind11, or set PYBIND11_DIR"; return 1; }
    local generator=()  # Ninja when there is one (not for a folder configured before with another)
    [ -f "$BUILD_DIR/CMakeCache.txt" ] || ! command -v ninja >/dev/null || generator=(-G Ninja)
    cmake -S . -B "$BUILD_DIR" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DSSD_BUILD_PYTHON=ON -DSSD_BUILD_TESTS=OFF \
      -DSSD_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$CUDA_ARCHS" "-DCMAKE_CUDA_COMPILER=$nvcc" \
      "-DPython_EXECUTABLE=$(command -v "$PYTHON")" "-Dpybind11_DIR=$pybind_dir" || return 1
    cmake --build "$BUILD_DIR" -j "$JOBS" --target _core || return 1
    # the package as it is in the tree, with the CUDA build of _core instead of the one there
    for entry in python/ssdcore/*; do
      case "$entry" in *_core*.so) ;; *) ln -s "$PWD/$entry" "$PYPATH/ssdcore/" ;; esac
    done
    cp "$BUILD_DIR"/_core*.so "$PYPATH/ssdcore/" || return 1
  fi
  # the build's own check: the module imports (also without a driver: static cudart) with its kernels;
  # whether a GPU is usable is preflight's and the tests' business
  PYTHONPATH="$PYPATH" "$PYTHON" -c "
import ssdcore, sys
print(ssdcore.device_summary())
sys.exit(0 if ssdcore.cuda_kernels_built() else 'the module was built without its CUDA kernels')"
}

stage_tests() {
  PYTHONPATH="$PYPATH" "$PYTHON" -m pytest -q -rs -m gpu --junitxml="$OUT/pytest.xml" tests || return 1
  # every GPU test skipped (no usable GPU, a CPU-only torch) is a failure here, not a pass
  "$PYTHON" - "$OUT/pytest.xml" <<'EOF'
import sys
import xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
ran = sum(int(s.get("tests", 0)) - int(s.get("skipped", 0)) for s in suites)
if ran == 0:
    sys.exit("no GPU test ran: all were skipped (reasons above); this stage needs a CUDA GPU and a CUDA torch")
print(f"{ran} GPU tests ran")
EOF
}

stage_bench() {
  PYTHONPATH="$PYPATH" "$PYTHON" - "$OUT/bench.json" <<'EOF'
import json, sys
from ssdcore.bench.bench import BenchSettings, format_table, run_bench
from ssdcore.bench.prompts import stdlib_prompts

s = BenchSettings(prompts=stdlib_prompts(3), max_tokens=64, repeats=2, sd_K=[4], ssd_K=[4], fan_out=[8],
                  backups=["jit"], hf=False, target_device="cuda", draft_device="cuda")
result = run_bench(s, progress=lambda m: print(m, flush=True))
print(format_table(result))
with open(sys.argv[1], "w") as f:
    json.dump(result, f, indent=2)
EOF
}

write_results() {  # results.json from the stage records and bench.json
  "$PYTHON" - "$OUT" "${RECORDS[@]}" <<'EOF'
import json, os, subprocess, sys
out, records = sys.argv[1], sys.argv[2:]
stages = {}
for r in records:
    name, status, seconds = r.split(":")
    stages[name] = dict(status=status, seconds=float(seconds), log=f"{name}.log")
res = dict(stages=stages, ok=all(s["status"] == "ok" for s in stages.values()))
try:
    res["gpu"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout.strip()
except OSError:
    res["gpu"] = None
bench = os.path.join(out, "bench.json")
if os.path.exists(bench):
    rows = json.load(open(bench))["results"]
    res["tokens_per_s"] = {name: row["tokens_per_s"] for name, row in rows.items()}
json.dump(res, open(os.path.join(out, "results.json"), "w"), indent=2)
print(json.dumps(res, indent=2))
EOF
}

if [ "$DRY_RUN" = 1 ]; then
  echo "gpu_check (dry run): OUT=$OUT PYTHON=$PYTHON CUDA_ARCHS=$CUDA_ARCHS JOBS=$JOBS build=$([ "$USE_PIP" = 1 ] && echo "pip" || echo "cmake --build $BUILD_DIR --target _core")"
  for s in "${STAGES[@]}"; do
    set -- $s
    echo "  stage $1: timeout ${2}s, log $OUT/$1.log"
  done
  echo "  results: $OUT/results.json; deadline ${DEADLINE_S}s"
  exit 0
fi

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
RECORDS=()
FAILED=""
START=$SECONDS
for s in "${STAGES[@]}"; do
  set -- $s
  name=$1 limit=$2 fn=$3
  left=$((DEADLINE_S - (SECONDS - START)))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ -n "$FAILED" ] || [ "$limit" -le 0 ]; then
    echo "== $name: skipped (${FAILED:-out of time})"
    RECORDS+=("$name:skipped:0")
    continue
  fi
  echo "== $name (timeout ${limit}s, log $OUT/$name.log)"
  t0=$SECONDS
  export -f "$fn"
  export OUT PYTHON CUDA_ARCHS JOBS BUILD_DIR PYPATH USE_PIP PYBIND11_DIR
  timeout --kill-after=10 "$limit" bash -c "$fn" >"$OUT/$name.log" 2>&1
  rc=$?
  tail -n 25 "$OUT/$name.log"
  if [ "$rc" -eq 0 ]; then
    RECORDS+=("$name:ok:$((SECONDS - t0))")
  else
    [ "$rc" -eq 124 ] && why="timed out after ${limit}s" || why="exit status $rc"
    RECORDS+=("$name:failed:$((SECONDS - t0))")
    FAILED="stage $name failed ($why, see $OUT/$name.log)"
    echo "gpu_check: $FAILED" >&2
  fi
done
write_results
[ -z "$FAILED" ] || die "$FAILED"
echo "gpu_check: all stages passed in $((SECONDS - START))s; results in $OUT/results.json"
