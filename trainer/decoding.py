"""How answers are decoded, the same for the gate's evaluation and the service (a module without torch, so the
service can read it whatever kind of model it serves)."""

REPETITION_PENALTY = 1.2  # the guide's generation setting
BATCH_SIZE = 16  # prompts per forward pass
