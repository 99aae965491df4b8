"""Process-wide settings for bit-exact CPU runs, applied on `import hf_nlpft`."""

import os

# Intel MKL, PyTorch's CPU BLAS, does not promise the same rounding from run to run unless told to: without its
# Conditional Numerical Reproducibility (CNR) its kernels may depend on memory alignment and run-time dispatch.
# A resumed run must end bit for bit where the uninterrupted run ends, so CNR is switched on in its strict mode,
# which keeps the native instruction set (no measurable cost in a single-thread GEMM timing here) and makes GEMM
# results independent of alignment and thread count. (While this was developed, two resumed runs ended ~1e-10 away
# from the uninterrupted one in one LayerNorm bias; that did not happen again in 7 later tries with or without
# this setting, so it guards a rare case, not an every-run one.) MKL reads the variable at its first computation:
# it takes effect when hf_nlpft is imported before any CPU matmul ran (always, through the `hf-nlpft` command).
# A value set by the user wins; `MKL_CBWR=` (empty) restores MKL's default.
os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
