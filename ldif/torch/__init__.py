"""Standalone PyTorch SIF/LDIF loader and evaluator (ldif/torch/sif.py imports only torch and numpy)."""
