"""Accounts: users, roles, invitations, sign-in, two-factor, sessions, admin screens."""
