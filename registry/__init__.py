"""Model registry: the promotion gate, the BentoML model store, promotions, lineage and the service."""
