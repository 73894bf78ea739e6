#!/usr/bin/env python3
"""cl-hive's entry under the name Core Lightning's plugin manager looks for: `reckless
install cl-hive` finds `cl-hive.py` (with `requirements.txt` beside it) and runs it through
a wrapper in its own virtual environment (`runpy`, as `__main__`). `plugin.py` is the same
plugin for `--plugin=` users."""
import sys
from pathlib import Path

# reckless puts this folder on sys.path; run directly, Python puts it there too. Either
# way, make sure our packages come from here.
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import plugin  # noqa: E402  (after the path is set)

if __name__ == "__main__":
    plugin.main()
