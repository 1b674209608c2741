"""Drift detection over the stored feedback stream: river detectors, windowed statistics, the policy."""
