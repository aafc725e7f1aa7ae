"""excessmort benchmark suite (see benchmarks/README.md)."""
