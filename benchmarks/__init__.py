"""Benchmarks of keras_opts: run each as ``python -m benchmarks.<name>``."""
