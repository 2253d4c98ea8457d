"""The workload suite of ``python -m benchmarks.workloads``: the problems,
the runs and the report."""
