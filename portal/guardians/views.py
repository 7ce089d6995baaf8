"""Minors and guardians: the one blueprint of the feature (pages are added by its modules)."""

from flask import Blueprint

bp = Blueprint("guardians", __name__)
