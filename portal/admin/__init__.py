"""Admin screens: people, invitations, assignments, two-step resets, the audit trail."""
