"""Run the issue-#6 workloads against PyTorch CPU; the same code as ``tinygrad-cnn bench``.

    python benchmarks/run.py [--workloads W1,W3a] [--reps 15] [--no-torch] [--json benchmarks/results/after.json]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinygrad_cnn.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
