"""The client's own record: pages for the export, requests and disclosures."""

from flask import Blueprint

bp = Blueprint("records", __name__, url_prefix="/record")
