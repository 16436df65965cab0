"""What the tests and the benchmarks share: private tool homes, small datasets, real servers, ports.

Installed with the project (pyproject.toml), so ``tests/`` and ``bench/`` import it without path edits.
"""
