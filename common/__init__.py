"""What every driftloop package shares: the error root and the classification scores. Imports nothing of the
project, so each leaf package may import it without coupling to another."""
