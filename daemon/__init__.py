"""driftloop daemon: the composition root (settings, CLI, scheduler jobs, admin API, signals, logging, demo)."""
