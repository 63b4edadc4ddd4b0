"""``python -m fits``: see fits.cli."""

import os
import sys

# The fitting work is many small matrix products; BLAS threads only add contention (and slow scipy's
# L-BFGS-B by orders of magnitude on a busy machine). Set before numpy loads; an explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from fits.cli import main

sys.exit(main())
