"""The tuning-quality benchmark (benchmarks/bench_tuning_quality.py): its datasets, sides and scoring."""
