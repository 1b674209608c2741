from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from trainer.settings import TrainerSettings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "trainer.md"


def test_every_setting_is_documented() -> None:
    text = DOCS.read_text()
    missing = [name for name in TrainerSettings.model_fields if f"`trainer.{name}`" not in text]
    assert not missing, f"document these settings in {DOCS}: {missing}"


def test_the_daemon_side_does_not_import_torch() -> None:
    code = "import sys, trainer.process, trainer.data, trainer.settings; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
