"""The generation demo's files: WordNet definitions of animals (what version 1 learns) and of verbs of motion (the
shift: other words, another part of speech, another way of defining), as "Define the noun: kettle" prompts with
the dictionary's definition as the answer, in bootstrap, stream and evaluation sets that never share a synset."""

from __future__ import annotations

import json
import random
from pathlib import Path

from daemon.demo.data import BAD_RECORDS, DemoFiles, DemoSizes, disjoint_samples
from ingest.glosses import Gloss, wordnet_glosses

OLD_GROUP = "noun.animal"
NEW_GROUP = "verb.motion"
MAX_WORDS = 20  # one-line definitions: the answers a 135M model can learn to write in a demo's minutes


def write_gloss_files(folder: Path, sizes: DemoSizes, seed: int = 0) -> DemoFiles:
    """Sample each group without overlap (`after.jsonl`: verbs of motion asked once the new model serves), plus
    `bad.jsonl`: one bad record of every kind and a repeated id, which the daemon rejects with their reasons."""
    rng = random.Random(seed)
    glosses = [gloss for gloss in wordnet_glosses() if len(gloss.definition.split()) <= MAX_WORDS]
    old = [gloss for gloss in glosses if gloss.group == OLD_GROUP]
    new = [gloss for gloss in glosses if gloss.group == NEW_GROUP]
    bootstrap, reference, eval_old = disjoint_samples(old, (sizes.bootstrap, sizes.reference, sizes.evaluation), rng)
    shifted, after, eval_new = disjoint_samples(new, (sizes.shifted, sizes.after, sizes.evaluation), rng)
    names = ("bootstrap", "reference", "shifted", "after", "eval-old", "eval-new", "bad")
    files = DemoFiles(*(folder / f"{name}.jsonl" for name in names))
    for path, part in zip(files[:6], (bootstrap, reference, shifted, after, eval_old, eval_new), strict=True):
        path.write_text("".join(json.dumps(_record(gloss)) + "\n" for gloss in part), encoding="utf-8")
    repeated = json.dumps(_record(shifted[0])).encode()  # rejected as a duplicate id
    files.bad.write_bytes(b"\n".join([*BAD_RECORDS, repeated]) + b"\n")
    return files


def _record(gloss: Gloss) -> dict[str, str]:
    """The feedback record of a person who answers the prompt as the dictionary does."""
    return {"id": gloss.id, "text": gloss.prompt, "label": gloss.definition}
