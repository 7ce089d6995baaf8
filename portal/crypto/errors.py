"""The two exceptions of the crypto layer.

Neither ever carries plaintext or key material: a message names a setting or a reason code,
never a value, so it is safe in logs, audit records and error pages.
"""


class KeyConfigError(Exception):
    """Keys are missing, malformed or do not match the database; the message is one line."""


class DecryptionError(Exception):
    """A sealed value (or a wrapped key) could not be opened.

    `reason` is a short code: "tampered", "shredded", "unknown-key", "unknown-version",
    "truncated", "malformed", "not-text", "unknown-master-key", "unwrap-failed".
    """

    def __init__(self, reason: str = "tampered") -> None:
        self.reason = reason
        super().__init__(f"sealed value could not be opened ({reason})")
