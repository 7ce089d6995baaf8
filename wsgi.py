"""WSGI entry point: gunicorn wsgi:app, flask --app wsgi ..."""

from portal import create_app
from portal.ops.runtime import settle

app = create_app()
settle()
