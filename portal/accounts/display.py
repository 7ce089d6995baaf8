"""How a person's name is written on a page: the one place that puts pronouns and
credentials beside a name ("Zoë (she/her)", "Colleen Demo, LPC (she/her)").

Templates call it as `person_label(name, pronouns, credentials)` (a template global the
accounts feature registers); Python that builds labels (a message's sender) calls it too.
"""


def person_label(name: str, pronouns: str = "", credentials: str = "") -> str:
    """The name, then ", credentials" (staff), then "(pronouns)" when set."""
    label = f"{name}, {credentials}" if credentials else name
    return f"{label} ({pronouns})" if pronouns else label


def reply_note(label: str, reply_hours: str) -> str:
    """"Colleen Demo, LPC (she/her) usually replies within a day." ("" without hours)."""
    hours = (reply_hours or "").strip().rstrip(".")
    return f"{label} {hours}." if hours else ""
