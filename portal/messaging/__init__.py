"""Secure messaging: threads, messages, attachments, the inbox and the therapist dashboard."""
