"""The workload suite of ``benchmarks/workloads.py``: the problems, the
runs and the report."""
