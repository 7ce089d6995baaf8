"""The messages the portal sends: fixed subjects and the context each template takes.

Subjects are fixed strings with no personal or clinical detail: a subject line shows on a lock
screen and in a shared inbox. Each template names the context it accepts, and `enqueue`
refuses anything else, so message text or a name cannot reach a mail by accident.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class MailTemplate:
    subject: str
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    @property
    def accepts(self) -> frozenset[str]:
        return frozenset(self.required) | frozenset(self.optional)


TEMPLATES: dict[str, MailTemplate] = {
    "invitation": MailTemplate("Your coeo portal invitation", ("link", "hours_valid")),
    "password_reset": MailTemplate("Reset your coeo portal password", ("link", "minutes_valid")),
    "lockout_notice": MailTemplate("Sign-in to your coeo portal is paused", ("minutes",),
                                   ("link",)),
    "password_disabled": MailTemplate("Please reset your coeo portal password", (), ("link",)),
    "new_message": MailTemplate("You have a new secure message", ("link",)),
    "urgent_message": MailTemplate("Urgent: a message in the portal needs you now", ("link",)),
    "crisis_escalation": MailTemplate("Urgent: please sign in to the portal now", ("link",)),
    "crisis_escalation_admin": MailTemplate("Urgent: a portal message is waiting for a clinician",
                                            ("link",)),
    # One emergency-access notice, in one design, for each who is told (no name, no reason).
    "emergency_access_notice": MailTemplate("Emergency access was granted in the coeo portal",
                                            ("link",)),
    "emergency_access_client": MailTemplate("Your coeo portal record was opened", ("link",)),
    "emergency_access_therapist": MailTemplate(
        "Emergency access was used for someone you care for", ("link",)),
    "estimate_requested": MailTemplate("A Good Faith Estimate was requested", ("link",)),
    "estimate_issued": MailTemplate("A new document is available in your portal", ("link",)),
    "password_changed": MailTemplate("Your coeo portal password was changed", (), ("link",)),
    "mfa_reset": MailTemplate("Two-step sign-in was reset on your coeo portal account", (),
                              ("link",)),
    # An administrator's correction of someone's email: the new address confirms with a link;
    # the old address is told, with no link to follow (a phone call is the way to object).
    "email_change_confirm": MailTemplate("Please confirm your new coeo portal email address",
                                         ("link", "hours_valid")),
    "email_change_notice": MailTemplate("The email address of your coeo portal account "
                                        "is changing"),
    "handover_to_therapist": MailTemplate("Conversations were handed over to you",
                                          ("link",)),
    # `staff_name`: the practice staff member who answers now (not the client's): no PHI.
    "handover_to_client": MailTemplate("Who answers your messages in the portal",
                                       ("link", "staff_name")),
    # A request for a copy or an amendment was extended, done or declined: the link only.
    "record_request_update": MailTemplate("An update on your request in the portal",
                                          ("link",)),
    # A copy of the record was downloaded: the day and time only, never the copy or a link to it.
    "record_exported": MailTemplate("A copy of your coeo portal record was made", ("when",),
                                    ("link",)),
    # A guardian's link to a young person ended because they turned 18: no name, no detail.
    "guardian_access_ended": MailTemplate("A change to your coeo portal access", (),
                                          ("link",)),
}

SUBJECTS: dict[str, str] = {name: template.subject for name, template in TEMPLATES.items()}
