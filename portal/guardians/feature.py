"""How minors and their guardians plug into the app."""

from flask import Flask

from portal.guardians import models  # noqa: F401  (the tables, for the metadata)


def init_app(app: Flask) -> None:
    """Nothing to register yet beyond the tables."""
