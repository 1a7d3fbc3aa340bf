"""Custom op (C++ CPU / CUDA) that evaluates SIFs/LDIFs with the original ldif2mesh kernel's semantics, with a
pure-TensorFlow fallback.

`ldif.ops.evaluate` is the API (`EvalModel`, `evaluate_points`, `evaluate_grid`, `evaluate_kernel_grid`);
`ldif.ops.loader` builds (scripts/build_kernel.sh) and loads the op library. Importing this package does not
import TensorFlow.
"""

from ldif.ops.evaluate import EvalModel
from ldif.ops.evaluate import evaluate_grid
from ldif.ops.evaluate import evaluate_kernel_grid
from ldif.ops.evaluate import evaluate_points
from ldif.ops.evaluate import kernel_grid_spec
