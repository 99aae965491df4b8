"""The benchmark suite, the same as `hf-nlpft bench` (--quick, --mode, --output, --threads, --only)."""
from hf_nlpft.bench import main

if __name__ == "__main__":  # guarded: the attention cases run in processes that re-import this file
    raise SystemExit(main())
