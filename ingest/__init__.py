"""Kafka → DuckDB ingestion of labelled feedback: schema, validation, cleaning, the feedback store."""
