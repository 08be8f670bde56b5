"""Optional dependencies: ``ssdcore serve`` needs the ``serve`` extra (fastapi, uvicorn,
prometheus_client) and the bench plot the ``bench`` extra (matplotlib). Without them the CLI must
print one ``ssdcore: error:`` line naming the install command and exit non-zero, with no traceback.

The packages are hidden rather than uninstalled: each case runs the CLI in a subprocess whose import
system refuses the named top-level modules (a meta-path finder that raises ModuleNotFoundError).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

BLOCKING_MAIN = """
import sys
blocked = set(sys.argv[1].split(","))

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())
from ssdcore.cli import main
sys.exit(main(sys.argv[2:]))
"""


def run_without(blocked: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    return subprocess.run([sys.executable, "-c", BLOCKING_MAIN, blocked, *args], text=True,
                          capture_output=True, timeout=300, env=env, stdin=subprocess.DEVNULL)


def assert_install_hint(proc: subprocess.CompletedProcess, command: str, missing: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1 and errors[0].startswith("ssdcore: error:"), proc.stderr
    assert command in errors[0] and missing in errors[0], errors[0]


@pytest.mark.parametrize("blocked", ["fastapi", "uvicorn", "prometheus_client"])
def test_serve_without_the_serve_extra(blocked):
    proc = run_without(blocked, "serve", "--port", "1")  # fails before binding or loading models
    assert_install_hint(proc, "pip install 'ssdcore[serve]'", blocked)


def test_bench_without_the_bench_extra(tmp_path):
    proc = run_without("matplotlib", "bench", "--no-hf", "--num-prompts", "1", "--max-tokens", "2",
                       "--repeats", "1", "--out", str(tmp_path / "out"))
    assert_install_hint(proc, "pip install 'ssdcore[bench]'", "matplotlib")
    assert not (tmp_path / "out").exists()  # refused before any benchmarking


def test_plot_without_matplotlib_names_the_extra(tmp_path):
    proc = subprocess.run([sys.executable, "-c", BLOCKING_MAIN.replace(
        "from ssdcore.cli import main\nsys.exit(main(sys.argv[2:]))",
        "from ssdcore.bench.bench_plot import plot\n"
        "try:\n    plot({}, 'x.png')\n"
        "except RuntimeError as e:\n    print(e)\n    sys.exit(3)"), "matplotlib"],
        text=True, capture_output=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert "pip install 'ssdcore[bench]'" in proc.stdout
