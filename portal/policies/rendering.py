"""Turn policy Markdown into safe HTML, fingerprint policy texts, and load the default texts.

Policy texts are written by the practice in the admin screens, so they are treated as untrusted:
Markdown is rendered first (raw HTML passes through it), and the result is then sanitized with an
allow-list, so whatever an editor pastes can never run script in a client's browser.
"""

import hashlib
import re
from functools import lru_cache
from pathlib import Path

import markdown
import nh3

POLICY_TITLES: dict[str, str] = {
    "terms": "Terms of Service",
    "privacy": "Privacy Policy",
    "good-faith-estimate": "Good Faith Estimate Notice",
    "accessibility": "Accessibility Statement",
}

CONTENT_DIR = Path(__file__).with_name("content")

# Heading ids are namespaced so a policy can never reuse an id that the page around it relies on.
ID_PREFIX = "policy-"

ALLOWED_TAGS = frozenset(
    {
        "p", "h1", "h2", "h3", "h4", "ul", "ol", "li", "strong", "em", "a", "blockquote",
        "code", "pre", "hr", "br", "table", "thead", "tbody", "tr", "th", "td",
    }
)  # fmt: skip

ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "h1": {"id"},
    "h2": {"id"},
    "h3": {"id"},
    "h4": {"id"},
}

# `align` is only kept with one of these values (the tables extension writes it).
ALIGN_VALUES = {"left", "center", "right"}
ALLOWED_ATTRIBUTE_VALUES = {"th": {"align": ALIGN_VALUES}, "td": {"align": ALIGN_VALUES}}

URL_SCHEMES = frozenset({"http", "https", "mailto", "tel"})

# Tags removed together with everything inside them, not just unwrapped.
DROP_WITH_CONTENT = frozenset(
    {"script", "style", "iframe", "object", "noscript", "template", "textarea", "title", "svg",
     "math"}
)  # fmt: skip

LINK_REL = "noopener noreferrer"

_SAFE_ID = re.compile(r"[A-Za-z0-9_-]+")


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    """Keep ids tidy and point in-page links at the prefixed heading ids."""
    if attribute == "id":
        return value if _SAFE_ID.fullmatch(value) else None
    if tag == "a" and attribute == "href" and value.startswith("#"):
        fragment = value[1:]
        if not _SAFE_ID.fullmatch(fragment):
            return None
        return value if fragment.startswith(ID_PREFIX) else f"#{ID_PREFIX}{fragment}"
    return value


@lru_cache(maxsize=64)
def render_markdown(text: str) -> str:
    """Render policy Markdown to sanitized HTML."""
    html = markdown.markdown(
        text,
        extensions=["sane_lists", "tables", "toc"],
        extension_configs={
            "tables": {"use_align_attribute": True},
            # An empty marker stops "[TOC]" in a text from expanding into a table of contents.
            "toc": {"marker": "", "permalink": False},
        },
        output_format="html",
    )
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROP_WITH_CONTENT),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        tag_attribute_values={
            tag: {name: set(values) for name, values in attrs.items()}
            for tag, attrs in ALLOWED_ATTRIBUTE_VALUES.items()
        },
        attribute_filter=_filter_attribute,
        url_schemes=set(URL_SCHEMES),
        link_rel=LINK_REL,
        strip_comments=True,
        id_prefix=ID_PREFIX,
    )


def normalize_newlines(text: str) -> str:
    """Return the text with Windows and old Mac line endings turned into "\\n"."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def text_hash(text: str) -> str:
    """Return the SHA-256 hex digest of the text's UTF-8 bytes, line endings normalized."""
    return hashlib.sha256(normalize_newlines(text).encode("utf-8")).hexdigest()


def load_default(slug: str) -> str:
    """Return the newest standard Markdown text for a policy slug."""
    if slug not in POLICY_TITLES:
        raise KeyError(f"unknown policy: {slug!r}")
    return load_content(f"{slug}.md")


@lru_cache(maxsize=32)
def load_content(name: str) -> str:
    """Return a standard text by its path under content/ (earlier versions live in history/)."""
    path = (CONTENT_DIR / name).resolve()
    if CONTENT_DIR.resolve() not in path.parents:
        raise KeyError(f"not a standard text: {name!r}")
    return path.read_text(encoding="utf-8")
