"""The crisis check: a small, clinically reviewed list of phrases about self-harm or suicide.

The list lives in one file, static/js/crisis-phrases.json, read here and by the compose page's
script (static/js/compose.js), which normalizes text the same way: NFKC, lower case,
apostrophes dropped, everything that is not a letter or digit turned into one space, then a
whole-word phrase match. A match never blocks a message: the page shows the crisis numbers
again, and the server flags the message for the therapist.
"""

import json
import re
import unicodedata
from functools import cache
from pathlib import Path

PHRASES_FILE = Path(__file__).resolve().parents[2] / "static" / "js" / "crisis-phrases.json"
_APOSTROPHES = re.compile("['\u2018\u2019\u02bc`\u00b4]")
_SEPARATORS = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """Fold text for matching (mirrors `normalize` in static/js/compose.js)."""
    text = unicodedata.normalize("NFKC", text or "").lower()
    text = _APOSTROPHES.sub("", text)
    return " " + _SEPARATORS.sub(" ", text).strip() + " "


@cache
def phrases() -> tuple[str, ...]:
    """Return the reviewed phrases, each already normalized."""
    data = json.loads(PHRASES_FILE.read_text(encoding="utf-8"))
    found = tuple(normalize(p).strip() for p in data["phrases"])
    if not found or any(not p for p in found):
        raise RuntimeError("crisis-phrases.json holds an empty phrase list or an empty phrase")
    return found


def matches(*texts: str | None) -> bool:
    """True when any text contains a listed phrase as whole words."""
    for text in texts:
        if text:
            folded = normalize(text)
            if any(f" {phrase} " in folded for phrase in phrases()):
                return True
    return False
