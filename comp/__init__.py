"""comp: a toolkit for Kaggle-style text-classification competitions."""

import os

# OpenMP threads that spin while waiting (libgomp's default) slow CPU training down up to 20x
# as soon as another process wants a core; passive waiting costs nothing measurable when alone
# (benchmarks/train_cpu.py). Set before torch is imported; the user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
