"""`driftloop --help`, the ingest path and the daemon's side of the trainer never import torch."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "imports",
    [
        "from daemon.cli import register_commands; register_commands()",
        "import ingest.consumer, ingest.store, daemon.runtime",
        "import trainer.process, trainer.data, trainer.settings",
    ],
)
def test_no_torch(imports: str) -> None:
    code = f"import sys; {imports}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
