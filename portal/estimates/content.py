"""An estimate's sealed content: sealing it, and opening it again (or saying it will not open).

Content is sealed under the client's data key. This is the one place a draft, a document or
a PDF is opened, so a failure to decrypt is audited here, once.
"""

import hmac
import json
import uuid

from portal.crypto import Context, DecryptionError, context_for, open_bytes, open_text, seal
from portal.crypto.blind_index import keyed_digest
from portal.crypto.hooks import report_decrypt_failure
from portal.errors import RuleError
from portal.estimates.document import GfeDocument
from portal.estimates.drafts import Draft
from portal.estimates.models import GoodFaithEstimate


class EstimateUnavailable(RuleError):
    """The sealed content would not open or no longer matches its stored digest.

    Views tell it apart from other refusals: it gets the calm "unavailable" page.
    """


def _document(estimate: GoodFaithEstimate) -> Context:
    return context_for(GoodFaithEstimate.document_sealed, estimate.id)


def _pdf(estimate: GoodFaithEstimate) -> Context:
    return context_for(GoodFaithEstimate.pdf_sealed, estimate.id)


def seal_json(estimate: GoodFaithEstimate, data: dict) -> bytes:
    """Seal a draft's or a document's dict as the estimate's document column."""
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return seal(estimate.client_id, _document(estimate), text)


def pdf_digest(estimate_id: uuid.UUID, pdf: bytes) -> str:
    """The frozen PDF's digest as stored (`pdf_digest`): hex HMAC-SHA256 of the row id and
    the bytes under the "estimate-pdf" subkey of PORTAL_INDEX_KEY, which lives outside the
    database. A plain SHA-256 of a deterministic PDF would let anyone holding the database
    test guesses at the sealed content; this one cannot be computed without the key, and the
    row id binds it to its estimate (a PDF copied to another row does not match)."""
    return keyed_digest("estimate-pdf", estimate_id.bytes + pdf).hex()


def seal_pdf(estimate: GoodFaithEstimate, pdf: bytes) -> bytes:
    """Seal the frozen PDF bytes as the estimate's PDF column."""
    return seal(estimate.client_id, _pdf(estimate), pdf)


def _open_json(estimate: GoodFaithEstimate) -> dict:
    if estimate.document_sealed is None:
        return {}
    return json.loads(open_text(estimate.client_id, _document(estimate),
                                estimate.document_sealed))


def open_draft(estimate: GoodFaithEstimate) -> Draft:
    """Open a draft's sealed content; EstimateUnavailable if it will not open."""
    return _open_as(estimate, "draft", lambda data: Draft.from_dict(data) if data else Draft())


def open_document(estimate: GoodFaithEstimate) -> GfeDocument:
    """Open an issued estimate's frozen document; EstimateUnavailable if it will not open."""
    if not estimate.is_issued:
        raise RuleError("This estimate has not been issued.")
    return _open_as(estimate, "estimate", GfeDocument.from_dict)


def _open_as(estimate: GoodFaithEstimate, what: str, parse):
    """Open the sealed JSON and parse it; a failure to decrypt is audited, and either failure
    becomes EstimateUnavailable ("This {what} could not be opened.")."""
    try:
        return parse(_open_json(estimate))
    except DecryptionError as error:
        report_decrypt_failure(estimate.client_id, _document(estimate),
                               error.reason)
        raise EstimateUnavailable(f"This {what} could not be opened.") from None
    except (ValueError, KeyError, TypeError):
        raise EstimateUnavailable(f"This {what} could not be opened.") from None


def open_pdf(estimate: GoodFaithEstimate) -> bytes:
    """Open the frozen PDF and check it against its stored keyed digest (`pdf_digest`)."""
    if not estimate.is_issued or estimate.pdf_sealed is None:
        raise RuleError("This estimate has not been issued.")
    try:
        pdf = open_bytes(estimate.client_id, _pdf(estimate),
                         estimate.pdf_sealed)
    except DecryptionError as error:
        report_decrypt_failure(estimate.client_id, _pdf(estimate),
                               error.reason)
        raise EstimateUnavailable("This estimate could not be opened.") from None
    if not estimate.pdf_digest or not hmac.compare_digest(
            pdf_digest(estimate.id, pdf), estimate.pdf_digest):
        raise EstimateUnavailable("This estimate's PDF does not match its record.")
    return pdf


def pdf_filename(estimate: GoodFaithEstimate) -> str:
    """A neutral download name: no client name, nothing clinical."""
    return f"good-faith-estimate-{estimate.number}.pdf"
