"""A conversation as a readable PDF, in the estimates' typography (fpdf2, DejaVu Sans).

The fonts, margins and colours are the estimates' own (`portal.estimates.pdf`), imported, not
copied. Each message shows who sent it, when, and whether it was read; its attachments are
named with the path of their copy in the export. A character the cut-down print font has no
glyph for prints as words, never as a silent "?" that could change what someone meant: an
emoji as its Unicode name ("[crying face]"), a run of another script as "[text in a script
this PDF cannot show]". The HTML copy beside the PDF in an export keeps the exact text.

A very long conversation is split into parts of PART_SIZE messages, so a PDF being built
never holds more than that many messages in memory.
"""

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime

from fpdf import FPDF

from portal.estimates.pdf import (
    FONT,
    FONT_DIR,
    FONT_FILES,
    INK,
    MARGIN_MM,
    MUTED,
    RULE,
    _covered_codepoints,
)
from portal.records.export_data import ConversationInfo, MessageItem
from portal.templating import local_time
from portal.text import size_text

PART_SIZE = 500
ROLE_WORDS = {"client": "", "therapist": "Therapist", "admin": "Practice staff"}


class _ConversationPdf(FPDF):
    footer_text = ""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, "", 8)
        self.set_text_color(*MUTED)
        self.cell(0, 5, f"{self.footer_text} · page {self.page_no()} of {{nb}}", align="C")


# Joiners and selectors that only shape the character before them: dropped, never named.
_SHAPERS = {0x200D, 0xFE0E, 0xFE0F, 0x20E3} | set(range(0x1F3FB, 0x1F400))
OTHER_SCRIPT = "[text in a script this PDF cannot show]"
_OTHER = re.escape(OTHER_SCRIPT)
_OTHER_RUNS = re.compile(rf"{_OTHER}(?:[\s.,;:!?'\"()-]*{_OTHER})+")


def printable(text: str) -> str:
    """The text with what the print font cannot show put into words (see the module's note)."""
    covered = _covered_codepoints()
    out: list[str] = []
    in_other_script = False
    for ch in text:
        code = ord(ch)
        if ch in "\n\t" or code in covered:
            out.append(ch)
            in_other_script = False
        elif code in _SHAPERS:
            continue
        elif unicodedata.category(ch) in ("So", "Sk", "Sm") and unicodedata.name(ch, ""):
            out.append(f"[{unicodedata.name(ch).lower()}]")
            in_other_script = False
        elif not in_other_script:
            out.append(OTHER_SCRIPT)
            in_other_script = True
    return _OTHER_RUNS.sub(OTHER_SCRIPT, "".join(out))


def read_state(message: MessageItem) -> str:
    """"Read <time>" or "Not read yet", from the other side's point of view."""
    if message.read_at is None:
        return "Not read yet"
    return f"Read {local_time(message.read_at)}"


class ConversationDocument:
    """Build one PDF (or one part of a long conversation) message by message."""

    def __init__(self, conversation: ConversationInfo, *, client_name: str, made_at: datetime,
                 part: int = 1) -> None:
        self.conversation = conversation
        self.count = 0
        self._widths: dict[tuple[str, str, float], float] = {}
        pdf = _ConversationPdf(orientation="portrait", unit="mm", format="letter")
        pdf.set_creation_date(made_at)
        pdf.set_title(printable(f"Conversation: {conversation.subject}"))
        pdf.set_lang("en-US")
        pdf.footer_text = f"Conversation {conversation.number}" + (
            f", part {part}" if part > 1 else "")
        for style, (_, name) in FONT_FILES.items():
            pdf.add_font(FONT, style, str(FONT_DIR / name))
        pdf.set_margins(MARGIN_MM, MARGIN_MM, MARGIN_MM)
        pdf.set_auto_page_break(auto=True, margin=MARGIN_MM)
        pdf.add_page()
        pdf.set_text_color(*INK)
        self.pdf = pdf
        self._title(client_name, part)

    def _text(self, text: str, *, size: float = 10, bold: bool = False, height: float = 5,
              muted: bool = False) -> None:
        pdf = self.pdf
        pdf.set_font(FONT, "B" if bold else "", size)
        pdf.set_text_color(*(MUTED if muted else INK))
        for line in self._lines(printable(text).replace("\t", "    ")):
            pdf.cell(0, height, line, new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(*INK)

    def _width(self, word: str) -> float:
        key = (word, self.pdf.font_style, self.pdf.font_size_pt)
        found = self._widths.get(key)
        if found is None:
            found = self._widths[key] = self.pdf.get_string_width(word)
            if len(self._widths) > 20_000:  # a bound, not a leak, whatever the text
                self._widths.clear()
        return found

    def _lines(self, text: str):
        """Wrap at word boundaries to the page's width. fpdf2's multi_cell measures a
        paragraph again for every character it adds (quadratic: 25 ms for a 400-character
        message); words measured once each make it linear."""
        room = self.pdf.epw - 2 * self.pdf.c_margin
        space = self._width(" ")
        for paragraph in text.split("\n"):
            line, used = "", 0.0
            for word in paragraph.split(" "):
                width = self._width(word)
                if width > room:  # a word longer than a line: cut it where it must
                    if line:
                        yield line
                    line, used = "", 0.0
                    for char in word:
                        w = self._width(char)
                        if used + w > room and line:
                            yield line
                            line, used = "", 0.0
                        line, used = line + char, used + w
                    continue
                if line and used + space + width > room:
                    yield line
                    line, used = word, width
                elif line:
                    line, used = f"{line} {word}", used + space + width
                else:
                    line, used = word, width
            yield line

    def _title(self, client_name: str, part: int) -> None:
        c = self.conversation
        self._text(c.subject, size=16, bold=True, height=8)
        with_whom = "the practice" if c.to_practice else (c.therapist_name or "a therapist")
        self._text(f"A conversation between {client_name} and {with_whom}", muted=True)
        self._text(f"Started {local_time(c.started_at)}"
                   + (f" · closed {local_time(c.closed_at)}" if c.closed_at else "")
                   + (f" · part {part}" if part > 1 else ""), muted=True)
        self.pdf.ln(3)

    def add(self, message: MessageItem, file_paths: dict | None = None) -> None:
        pdf = self.pdf
        if pdf.will_page_break(18):
            pdf.add_page()
        pdf.set_draw_color(*RULE)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(2)
        role = ROLE_WORDS.get(message.sender_role, "")
        self._text(message.sender + (f" ({role})" if role else ""), bold=True)
        self._text(f"Sent {local_time(message.created_at)} · {read_state(message)}",
                   size=8.5, height=4.5, muted=True)
        pdf.ln(1)
        if message.unavailable:
            self._text("This message could not be decrypted, so it is not in this copy.",
                       muted=True)
        else:
            self._text(message.body)
        for item in message.attachments:
            where = (file_paths or {}).get(item.id)
            saved = f" (saved as {where})" if where else " (could not be included)"
            self._text(f"Attached: {item.name}, {item.kind_label}, {size_text(item.size)}"
                       + saved, size=8.5, height=4.5, muted=True)
        pdf.ln(3)
        self.count += 1

    def output(self) -> bytes:
        if not self.count:
            self._text("There are no messages in this conversation.", muted=True)
        return bytes(self.pdf.output())


def render_conversation(conversation: ConversationInfo, messages: Iterable[MessageItem], *,
                        client_name: str, made_at: datetime) -> bytes:
    """A whole conversation as one PDF (the staff's single-conversation export)."""
    document = ConversationDocument(conversation, client_name=client_name, made_at=made_at)
    for message in messages:
        document.add(message)
    return document.output()
