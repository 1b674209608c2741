"""Drift detection over the stored feedback stream: river detectors, windowed statistics, the policy.

Import from the modules (`drift.monitor`, `drift.store`, `drift.backtest`, ...): the package itself stays
empty so that reading the settings (`drift.settings`) does not load river, numpy or duckdb.
"""
