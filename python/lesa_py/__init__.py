"""lesa_py: the PyTorch side of lesa (evaluation, fixtures, HF load checks)."""
__version__ = "0.1.0"
