"""Privacy Policy version 2 and the Good Faith Estimate correction, through the portal's own
versioning: what the texts say (45 CFR 164.520(b), 164.510(b), 164.512(g) and (h),
Pennsylvania's stricter laws, 149.620), how a fresh and an upgraded database both end on
version 2, and how the acceptance page words receipt (164.520(c)(2)(ii)) and agreement."""

import re
from datetime import UTC, date, datetime

import time_machine
from sqlalchemy import select

from portal import practice
from portal.audit.models import AuditEvent
from portal.extensions import db
from portal.ops.retention import DEFAULT_YEARS
from portal.policies import service
from portal.policies.rendering import load_content, load_default, render_markdown
from tests.policies.conftest import (
    csrf_from,
    make_user,
    publish,
    publish_first_standard_versions,
    sign_in,
)

ACCEPT = "/policies/accept"
PRIVACY = load_default("privacy")
GFE = load_default("good-faith-estimate")


def _plain(markdown_text: str) -> str:
    """The text a reader sees: rendered, tags dropped, spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", render_markdown(markdown_text)).split())


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = text.find("\n#", start + len(heading))
    return text[start:following if following != -1 else None]


def _accept_page(client) -> str:
    response = client.get(ACCEPT)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _main(html: str) -> str:
    return html.split("<main", 1)[1].split("</main>", 1)[0]


def _post(client, decision: str):
    html = _accept_page(client)
    versions = re.search(r'name="versions"[^>]*value="([^"]*)"', html).group(1)
    return client.post(ACCEPT, data={"csrf_token": csrf_from(html), "versions": versions,
                                     "decision": decision, "next": ""})


# --- what the notice says ------------------------------------------------------------------

def test_privacy_v2_describes_family_friends_and_disaster_relief_164_510_b():
    """45 CFR 164.510(b): people involved in care or payment, notification, disaster relief,
    with the chance to agree or object, and professional judgment when one cannot be asked."""
    family = _plain(_section(PRIVACY, "### Family, friends and others involved in your care"))
    for phrase in ("family member, a friend or another person you name",
                   "involved in your care or helps pay for it",
                   "where you are, how you are doing in general, or that you have died",
                   "we ask you first, and you can say no",
                   "professional judgment", "best interest",
                   "we ask for your written consent"):
        assert phrase in family, phrase
    disaster = _plain(_section(PRIVACY, "### Disaster relief"))
    assert "American Red Cross" in disaster
    assert "You can tell us if you object" in disaster


def test_privacy_v2_names_funeral_directors_and_organ_donation_164_512_g_h():
    """45 CFR 164.512(g) (coroners, medical examiners, funeral directors) and 164.512(h)
    (cadaveric organ, eye or tissue donation)."""
    others = _plain(_section(PRIVACY, "## Other times we may share your information"))
    assert "Coroners, medical examiners and funeral directors" in others
    assert "to a funeral director as they need to carry out their duties" in others
    assert "organ, eye or tissue donation and transplantation" in others
    assert "When someone who is a donor has died" in others


def test_privacy_v2_states_pennsylvanias_stricter_rules_in_concrete_terms():
    """45 CFR 164.520(b)(1)(ii)(C): where other law is more stringent, the notice reflects it:
    the MHPA (50 P.S. § 7111) and 55 Pa. Code §§ 5100.31-5100.39, the Drug and Alcohol Abuse
    Control Act (71 P.S. § 1690.108), 42 CFR Part 2, and Act 148 (35 P.S. § 7607)."""
    pa = _plain(_section(PRIVACY, "### Pennsylvania's extra protections"))
    for phrase in ("50 P.S. § 7111", "55 Pa. Code §§ 5100.31\u20135100.39",
                   "For nearly anything else, we need your written consent or a court order.",
                   "A subpoena on its own is not enough",
                   "71 P.S. § 1690.108", "when your life is in immediate danger",
                   "42 CFR Part 2",
                   "Act 148", "35 P.S. § 7607",
                   "specifically covers HIV-related information",
                   "told in writing that they may not share it further"):
        assert phrase in pa, phrase


def test_privacy_v2_says_how_long_records_are_kept_as_the_portal_does():
    """The retention period is the portal's (portal/ops/retention.py, RETENTION_YEARS 7 by
    default, counted from the later of the last session and the last portal activity), and
    longer than Pennsylvania's five-year minimum (49 Pa. Code §§ 41.57, 49.78)."""
    assert DEFAULT_YEARS == 7
    kept = _plain(_section(PRIVACY, "## How long we keep your information"))
    assert "at least seven years after your last session with us" in kept
    assert "after you last used the client portal if that is later" in kept
    assert "at least five years" in kept
    assert "for as long as the law and our professional rules require" not in PRIVACY


def test_privacy_v2_explains_that_confirming_receipt_is_not_agreement_164_520_c_2_ii():
    """45 CFR 164.520(c)(2)(ii): a good faith effort to obtain a written acknowledgment of
    receipt; the notice says confirming is not agreeing and care does not depend on it."""
    section = _plain(_section(PRIVACY, "## Confirming that you received this notice"))
    assert "does not mean you agree with it" in section
    assert "It does not change your care with us." in section


def test_version_1_of_each_standard_text_is_kept_byte_for_byte():
    """An upgraded database recognises the version 1 it published by the text's hash."""
    v1 = load_content("history/privacy-1.md")
    assert "We keep your records for as long as the law and our professional rules require." \
        in v1
    assert "funeral" not in v1
    assert "for a service is at least $400" in load_content("history/good-faith-estimate-1.md")


def test_the_good_faith_estimate_counts_400_dollars_per_provider_or_facility_149_620():
    """45 CFR 149.620: 'substantially in excess' is at least $400 more than the total expected
    charges for that provider or facility on the estimate, not per service."""
    assert "for a service is at least $400" not in GFE
    assert "at least $400 more for any provider or facility than your Good Faith Estimate" \
        in GFE
    dispute = _plain(_section(GFE, "## If your bill is higher than your estimate"))
    assert "the total expected charges for coeo on your Good Faith Estimate" in dispute
    assert "counted for each provider or facility, not for each service" in dispute


# --- versioning: fresh and upgraded databases ----------------------------------------------

def test_a_fresh_database_ends_with_privacy_version_2_current(app):
    """`portal policies init` on an empty database publishes the standard history in order."""
    service.ensure_defaults()
    privacy = service.current_version("privacy")
    assert privacy.number == 2
    assert privacy.text == PRIVACY
    assert privacy.summary == service.PRIVACY_V2_SUMMARY
    assert privacy.requires_acceptance is True
    assert service.current_version("good-faith-estimate").number == 2
    new_client = make_user("client")
    assert {(v.slug, v.number) for v in service.pending_for(new_client)} == {
        ("terms", 1), ("privacy", 2)}


def test_an_upgraded_database_gets_version_2_and_clients_are_asked_again(app):
    """A database that published the standard version 1 before gets version 2, effective
    the day it is published (never in the past), and only privacy asks again (164.520(c))."""
    with time_machine.travel(datetime(2026, 11, 2, 15, tzinfo=UTC), tick=False):
        first = publish_first_standard_versions()
        client = make_user("client")
        service.accept(client, [v.id for v in service.pending_for(client)])
        assert service.pending_for(client) == []
    with time_machine.travel(datetime(2026, 12, 2, 15, tzinfo=UTC), tick=False):
        assert [(u.slug, u.number) for u in service.standard_updates()] == [
            ("privacy", 2), ("good-faith-estimate", 2)]
        published = service.ensure_defaults()
        assert [(v.slug, v.number) for v in published] == [
            ("privacy", 2), ("good-faith-estimate", 2)]
        privacy, gfe = published
        assert privacy.effective_date == gfe.effective_date == practice.today() \
            == date(2026, 12, 2)
        assert privacy.requires_acceptance is True
        assert gfe.requires_acceptance is False  # a wording correction asks nobody again
        assert [v.id for v in service.pending_for(client)] == [privacy.id]
        assert service.get_version("privacy", 1).id == first["privacy"].id  # kept as it was
        assert service.ensure_defaults() == []
        assert service.standard_updates() == []


def test_the_practices_own_text_is_never_replaced_by_a_standard_update(app, runner):
    """A policy whose newest version the practice wrote itself keeps it; init says so."""
    publish_first_standard_versions()
    own = publish("privacy", summary="Our own wording.", requires_acceptance=True)
    assert own.number == 2
    result = runner.invoke(args=["portal", "policies", "init"])
    assert result.exit_code == 0, result.output
    assert "Published Good Faith Estimate Notice version 2" in result.output
    assert "Privacy Policy: version 2 is the practice's own text" in result.output
    assert service.latest_version("privacy").id == own.id
    assert service.customized_behind() == [own]


def test_init_prints_each_version_it_publishes(runner):
    publish_first_standard_versions()
    result = runner.invoke(args=["portal", "policies", "init"])
    assert result.exit_code == 0, result.output
    assert "Published Privacy Policy version 2, effective " in result.output
    assert "clients must accept it" in result.output
    events = db.session.scalars(select(AuditEvent.action)
                                .where(AuditEvent.action == "policy.published")).all()
    assert len(events) == 4 + 2


def test_the_admin_list_offers_the_updated_standard_texts(client, app):
    publish_first_standard_versions()
    admin = make_user("admin")
    sign_in(client, admin)
    html = client.get("/admin/policies").get_data(as_text=True)
    assert "Updated standard texts are ready to publish, effective today" in html
    assert ("Privacy Policy version 2 (clients will be asked to acknowledge receiving it)"
            in html)
    response = client.post("/admin/policies/standard-texts",
                           data={"csrf_token": csrf_from(html)})
    assert response.status_code == 302
    html = client.get("/admin/policies").get_data(as_text=True)
    assert ("Published the standard texts: Privacy Policy version 2, Good Faith Estimate "
            "Notice version 2.") in html
    assert "ready to publish" not in html
    assert service.current_version("privacy").published_by_id == admin.id


# --- the words of the acceptance page --------------------------------------------------------

def test_an_updated_privacy_notice_asks_for_receipt_not_agreement_164_520_c_2_ii(client, app):
    """45 CFR 164.520(c)(2)(ii): the client acknowledges receipt of the notice; nothing on the
    page says they agree to it."""
    with time_machine.travel(datetime(2026, 11, 2, 15, tzinfo=UTC), tick=False):
        publish_first_standard_versions()
        person = make_user("client")
        service.accept(person, [v.id for v in service.pending_for(person)])
    with time_machine.travel(datetime(2026, 12, 2, 15, tzinfo=UTC), tick=False):
        service.ensure_defaults()
        sign_in(client, person)
        main = _main(_accept_page(client))
        assert "We have updated a policy" in main
        assert "What changed since the version you received" in main
        assert service.PRIVACY_V2_SUMMARY.split(".")[0] in main
        assert ("By choosing Acknowledge receipt and continue, you confirm that you have "
                "received the Notice of Privacy Practices (our Privacy Policy) shown above."
                ) in main
        assert "does not mean you agree with it" in main
        assert 'value="accept">Acknowledge receipt and continue</button>' in main
        assert "Not now, sign me out" in main
        assert "agree to" not in main.lower().replace("you agree with it", "")
        assert "Accept and continue" not in main
        response = _post(client, "accept")
        assert response.status_code == 302
        page = client.get(response.location, follow_redirects=True).get_data(as_text=True)
        assert "Thank you. You confirmed that you received the Privacy Policy." in page
        assert service.pending_for(person) == []


def test_a_new_client_agrees_to_the_terms_and_acknowledges_the_notice(client, app):
    """Both kinds on one page: agreement for the terms, receipt for the privacy notice."""
    service.ensure_defaults()
    person = make_user("client")
    sign_in(client, person)
    main = _main(_accept_page(client))
    assert ("To use the portal, we ask you to agree to the Terms of Service and confirm that "
            "you have received the Notice of Privacy Practices (our Privacy Policy).") in main
    assert 'value="accept">Agree and confirm receipt</button>' in main
    assert "Decline and sign out" in main


def test_a_terms_only_update_is_still_agreement(client, app):
    with time_machine.travel(datetime(2026, 11, 2, 15, tzinfo=UTC), tick=False):
        service.ensure_defaults()
        person = make_user("client")
        service.accept(person, [v.id for v in service.pending_for(person)])
        publish("terms", requires_acceptance=True, summary="Clearer wording.")
        sign_in(client, person)
        main = _main(_accept_page(client))
    assert "By choosing Accept and continue, you agree to the Terms of Service shown above." \
        in main
    assert "received" not in main
    assert "What changed since you last accepted it" in main


def test_the_words_are_true_for_every_mix_of_policies(app):
    """Every combination reads as agreement for the terms and receipt for the rest."""
    versions = {slug: v for slug, v in publish_first_standard_versions().items()}
    for slugs in (["terms"], ["privacy"], ["good-faith-estimate"], ["terms", "privacy"],
                  ["privacy", "accessibility"], ["terms", "privacy", "good-faith-estimate"]):
        words = service.confirmation([versions[s] for s in slugs])
        assert ("agree to the Terms of Service" in words.asks) is ("terms" in slugs)
        for slug in slugs:
            if slug == "terms":
                continue
            name = service.RECEIPT_NAMES.get(slug, service.title_of(slug))
            assert f"received the {name}" in words.asks or f"the {name}" in words.asks
            assert f"agree to the {service.title_of(slug)}" not in words.asks
        assert words.button in words.statement
        assert ("does not mean you agree" in words.statement) is (slugs != ["terms"])
