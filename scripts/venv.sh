# scripts/venv.sh: sourced by run.sh and test.sh. Creates/activates the virtualenv ($SSD_VENV or
# ./.venv) and, unless SSD_SKIP_INSTALL=1, installs torch (pinned CPU wheel) and ssdcore with the
# extras given as the first argument (e.g. "[test]").
VENV="${SSD_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
if [ "${SSD_SKIP_INSTALL:-0}" != "1" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q torch==2.13.0
  python -m pip install -q ".${1:-}"
fi
