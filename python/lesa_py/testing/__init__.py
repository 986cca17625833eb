"""Tools the tests and benchmarks use, not the product: the independent PyTorch LESA oracle,
the fixture builder and the transformers load check (``python -m lesa_py.testing.X``)."""
