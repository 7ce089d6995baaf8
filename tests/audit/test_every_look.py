"""Every look is logged (issue #14; the Privacy notice and "Who has seen my record" promise it;
45 CFR 164.312(b), audit controls; 164.528, an accounting of who saw the record).

One client with data in every state (a draft estimate, an issued one, a superseded one and its
correction, a billed one, a conversation, an emergency grant), then every GET route of the app
with its URL parameters filled from that world, requested as the client's assigned therapist,
a covering therapist who is not assigned, and an administrator, each also with an admin's
`?reason=` for the estimate pages. Each answer that is 200 and shows the client's information
(their name, date of birth or a diagnosis code, or their estimate's PDF) must have put exactly
one new event on the trail with the client as its subject: not zero (an invisible look), not
two (a look counted twice on their access log).
"""

import re
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from portal.accounts.models import Assignment, Role
from portal.audit import AuditEvent
from portal.audit.service import subject_ids
from portal.estimates import billing, drafting, follow_ups, issuing
from portal.estimates.drafts import DraftLine
from portal.extensions import db
from portal.messaging import emergency, sending
from portal.practice import today as practice_today
from tests.estimates.conftest import complete_draft
from tests.support.auth import signed_in
from tests.support.people import make_user

NAME = "Zoë Nguyễn-Ōtsuka"
DOB = date(1991, 7, 14)
CODE = "F43.12"  # on no page as an example, so finding it means the client's codes are shown
SHOWN = (NAME, f"{DOB:%B} {DOB.day}, {DOB.year}", DOB.isoformat(), f"{DOB:%m/%d/%Y}", CODE)

# Pages that show the client's information to staff and are not (yet) on the client's access
# log: each is outside the estimates and admin screens this walk's change covers (named in the
# issue #14 report). The walk fails if any other page is missing its event, and also if one of
# these starts recording (then take it off the list).
NOT_YET_LOGGED: set[tuple[str, str]] = set()

# Placeholders that cannot be filled from the world (tokens, policy slugs): never client data.
UNFILLED = {"token", "slug", "number", "filename"}


def _lines(codes):
    return (
        DraftLine(0, "90791", "Diagnostic evaluation", 1, 200_00, diagnosis_tbd=True),
        DraftLine(0, "90837", "Individual psychotherapy, 60 minutes", 25, 160_00, codes),
        DraftLine(1, "90847", "Family psychotherapy", 2, 175_00, codes),
    )


def _issue(therapist, client, **changes):
    estimate = drafting.create_draft(therapist, client)
    drafting.save_draft(therapist, estimate, complete_draft(
        practice_today(), client_legal_name=NAME, client_dob=DOB, lines=_lines((CODE,)),
        **changes))
    return issuing.issue(therapist, estimate.id)


@pytest.fixture
def world(app, isolated_requests):
    therapist = make_user("therapist", "Colleen Example")
    covering = make_user("therapist", "Kristen Example")
    covering.covering = True
    admin = make_user("admin", "Morgan Admin")
    client = make_user("client", NAME)
    db.session.add(Assignment(client_id=client.id, therapist_id=therapist.id))
    db.session.commit()

    today = practice_today()
    draft = drafting.create_draft(therapist, client)
    drafting.save_draft(therapist, draft, complete_draft(
        today, client_legal_name=NAME, client_dob=DOB, lines=_lines((CODE,))))
    issued = _issue(therapist, client)
    superseded = _issue(therapist, client)
    correction = follow_ups.start_correction(therapist, superseded)
    correction = issuing.issue(therapist, correction.id)
    billed = _issue(therapist, client, period_start=today - timedelta(days=7),
                    period_end=today + timedelta(days=170))
    billing.record_bill(therapist, billed, provider_position=0, amount_cents=500_00,
                        bill_date=today)
    db.session.commit()
    thread, _ = sending.start_thread(client, counterpart_id=therapist.id,
                                     subject="Before Thursday", body="A few thoughts.",
                                     notify=False)
    grant = emergency.grant(admin, client_id=client.id, category="safety",
                            reason="The client wrote that they are not safe tonight and "
                                   "their therapist cannot be reached.")
    return {
        "people": {"therapist": therapist, "covering therapist": covering, "admin": admin},
        "client": client,
        "params": {
            "estimate_id": [draft.id, issued.id, superseded.id, correction.id, billed.id],
            "thread_id": [thread.id], "user_id": [client.id], "client_id": [client.id],
            "therapist_id": [therapist.id],
            "grant_id": [grant.id], "attachment_id": [],
        },
    }


def _urls(app, params: dict) -> tuple[list[tuple[str, str]], set[str]]:
    """Every GET route as (endpoint, url) with its parameters filled; and what was skipped."""
    urls, skipped = [], set()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if "GET" not in rule.methods or rule.endpoint == "static":
            continue
        if set(rule.arguments) & UNFILLED:
            skipped.add(rule.endpoint)
            continue
        fills = [{}]
        for argument in rule.arguments:
            values = params.get(argument)
            if values is None:
                skipped.add(rule.endpoint)
                break
            fills = [{**f, argument: v} for f in fills for v in values]
        if rule.endpoint in skipped:
            continue
        for values in fills:
            path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>",
                          lambda m, filled=values: str(filled[m.group(1)]), rule.rule)
            urls.append((rule.endpoint, path))
            if rule.endpoint.startswith("estimates.") and "estimate_id" in values:
                urls += [(rule.endpoint, f"{path}?reason=billing"),
                         (rule.endpoint, f"{path}?reason=curiosity")]
            if rule.endpoint == "admin.users":
                urls.append((rule.endpoint, f"{path}?role=client"))
    return urls, skipped


def _events_about(client_id: uuid.UUID) -> int:
    db.session.rollback()  # a fresh read: the requests committed in their own sessions
    # an emergency page's event has the client's keyed stand-in as its subject (#17)
    return db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.subject_id.in_(subject_ids(client_id))))


def _shows_client(response) -> bool:
    if response.status_code != 200:
        return False
    if response.mimetype == "application/pdf":
        return True  # the client's estimate itself
    text = response.get_data(as_text=True)
    return any(value in text for value in SHOWN)


def test_every_page_that_shows_a_client_to_staff_records_exactly_one_look(app, world):
    """45 CFR 164.312(b): each staff view of a client's information is one event about them."""
    client = world["client"]
    urls, skipped = _urls(app, world["params"])
    print("not walked (a parameter the world does not fill):", sorted(skipped))
    assert not {e for e in skipped if e.startswith(("estimates.", "admin.", "messaging."))}
    checked, wrong, unlogged = [], [], set()
    for who, person in world["people"].items():
        browser = signed_in(app, person)
        for endpoint, url in urls:
            before = _events_about(client.id)
            response = browser.get(url)
            if not _shows_client(response):
                continue
            added = _events_about(client.id) - before
            role = "admin" if person.role == Role.ADMIN else "therapist"
            if added == 0 and (role, endpoint) in NOT_YET_LOGGED:
                unlogged.add((role, endpoint))
                continue
            checked.append((who, url))
            if added != 1:
                wrong.append((who, url, added))
    print(f"{len(checked)} pages showed the client's information and were checked:")
    for who, url in checked:
        print(f"  {who:20} {url}")
    assert wrong == [], wrong
    assert unlogged == NOT_YET_LOGGED, "a page on NOT_YET_LOGGED now records its look"
    # Measured: 62 (see the report for issue #14); a walk that finds far fewer checks nothing.
    assert len(checked) >= 60, checked
    paths = {url.split("?")[0] for _, url in checked}
    draft, *issued = world["params"]["estimate_id"]
    for needed in ("/admin/users", f"/admin/users/{client.id}", "/estimates/practice",
                   "/estimates/new", f"/estimates/{draft}/edit", f"/estimates/{draft}/review",
                   *(f"/estimates/{e}" for e in issued), *(f"/estimates/{e}/pdf" for e in issued)):
        assert needed in paths, needed


def test_the_clients_access_log_words_each_look_plainly(app, world):
    """45 CFR 164.528: the client can see who looked at their record, in words they read."""
    client, people = world["client"], world["people"]
    draft, issued, *_ = world["params"]["estimate_id"]
    therapist, admin = signed_in(app, people["therapist"]), signed_in(app, people["admin"])
    for browser, url in ((therapist, f"/estimates/{issued}"),
                         (therapist, f"/estimates/{draft}/review"),
                         (therapist, "/estimates/practice"),
                         (admin, f"/estimates/{issued}?reason=billing"),
                         (admin, f"/estimates/{issued}/pdf?reason=client_request"),
                         (admin, f"/estimates/{draft}/review?reason=compliance_review"),
                         (admin, "/admin/users"),
                         (admin, f"/admin/users/{client.id}")):
        assert browser.get(url).status_code == 200, url
    page = signed_in(app, client).get("/account/access-log")
    text = page.get_data(as_text=True).replace("&#39;", "'")
    number = next(n for n in re.findall(r"GFE-[0-9A-Z-]+", text))
    for words in (
            f"Opened your Good Faith Estimate {number}",
            "Opened a draft of your Good Faith Estimate",
            "Saw your name and your estimates in the practice's list of Good Faith Estimates",
            f"Looked at the diagnosis codes on your Good Faith Estimate {number}, for billing",
            f"Downloaded your Good Faith Estimate {number}, with its diagnosis codes, because "
            "you asked the practice to",
            "Looked at the diagnosis codes on a draft of your Good Faith Estimate, for a "
            "compliance review",
            "Saw your name in a list of the practice's clients",
            "Opened your account details (your name, email address and therapists)"):
        assert words in text, words
    assert "Worked with your record" not in text
    assert CODE not in text  # the log says what was seen, never the codes themselves
