"""Read dollar amounts typed by people into integer cents, refusing anything doubtful.

"$1,234.50", "1234.5", "1,234" and "80" are fine; negative, malformed, over-precise or huge
amounts are refused with a message that can sit next to the field. No float ever touches money.
"""

import re

# Digits only in ASCII (str.isdigit would let "١٢٣" through), commas only in groups of three.
_AMOUNT = re.compile(r"(?P<whole>[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)?(?:\.(?P<frac>[0-9]{0,2}))?",
                     re.ASCII)
_COUNT = re.compile(r"[0-9]{1,6}", re.ASCII)

MAX_CHARGE_CENTS = 100_000_00  # $100,000.00: far above any charge this practice would estimate


class AmountError(ValueError):
    """The text is not an amount we accept; str(error) says why in plain words."""


def parse_cents(text: str | None, *, max_cents: int = MAX_CHARGE_CENTS) -> int | None:
    """Return the amount in cents, None when blank, or raise AmountError."""
    value = (text or "").strip().replace(" ", "")
    if not value:
        return None
    if value.startswith(("-", "\u2212", "(")) or value.endswith(")") or "-" in value:
        raise AmountError("Amounts cannot be negative.")
    if value.startswith("$"):
        value = value[1:]
    if len(value) > 20:
        raise AmountError("That amount is too large.")
    match = _AMOUNT.fullmatch(value)
    if not match or not (match.group("whole") or match.group("frac")):
        if re.fullmatch(r"[0-9.,]+", value, re.ASCII) and re.search(r"\.[0-9]{3,}$", value):
            raise AmountError("Use at most two digits for cents, like 160.00.")
        raise AmountError("Enter an amount in dollars, like 160.00 or $1,250.")
    whole = int((match.group("whole") or "0").replace(",", ""))
    frac = (match.group("frac") or "").ljust(2, "0")
    cents = whole * 100 + int(frac)
    if cents > max_cents:
        raise AmountError(f"That amount is larger than ${max_cents // 100:,} — please check it.")
    return cents


def parse_count(text: str | None, *, low: int = 1, high: int = 999,
                what: str = "number") -> int | None:
    """Return a whole number between low and high, None when blank, or raise AmountError."""
    value = (text or "").strip()
    if not value:
        return None
    if value.startswith("-"):
        raise AmountError(f"The {what} cannot be negative.")
    if not _COUNT.fullmatch(value):
        raise AmountError(f"Enter the {what} as a whole number, like 12.")
    number = int(value)
    if number < low:
        raise AmountError(f"The {what} must be at least {low}.")
    if number > high:
        raise AmountError(f"The {what} can be at most {high}.")
    return number


def cents_input(cents: int | None) -> str:
    """Show cents in a form field the way parse_cents reads them back: "1,234.50"."""
    if cents is None:
        return ""
    return f"{cents // 100:,}.{cents % 100:02d}"
