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
    "emergency_access_notice": MailTemplate("Emergency access was granted in the coeo portal",
                                            ("link",)),
    "estimate_requested": MailTemplate("A Good Faith Estimate was requested", ("link",)),
    "estimate_issued": MailTemplate("A new document is available in your portal", ("link",)),
    "password_changed": MailTemplate("Your coeo portal password was changed", (), ("link",)),
    "mfa_reset": MailTemplate("Two-step sign-in was reset on your coeo portal account", (),
                              ("link",)),
}

SUBJECTS: dict[str, str] = {name: template.subject for name, template in TEMPLATES.items()}
