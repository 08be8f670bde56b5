"""``python -m ssdcore``: the command line (see cli.py).

``python -m ssdcore --cmake-dir`` prints the directory of the installed C++ CMake package (pass it as
``-Dssdcore_DIR=...``) and ``--include-dir`` the public C++ headers' directory (see docs/native.md).
"""
import os
import sys

_NATIVE_DIRS = {"--cmake-dir": ("lib", "cmake", "ssdcore"), "--include-dir": ("include",)}


def _print_native_dir(flag):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), *_NATIVE_DIRS[flag])
    if not os.path.isdir(path):
        print(f"ssdcore: {path} does not exist: this installation carries no C++ package "
              "(build and install the wheel, e.g. `pip install .`)", file=sys.stderr)
        return 1
    print(path)
    return 0


_flag = next((a for a in sys.argv[1:] if a in _NATIVE_DIRS), None)
if _flag is not None:
    sys.exit(_print_native_dir(_flag))

from .cli import main  # noqa: E402

sys.exit(main())
