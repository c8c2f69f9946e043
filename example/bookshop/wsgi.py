"""WSGI entry point (gunicorn, sync views). Static files (/static/) are served by Django's
staticfiles handler, ahead of the middleware: the example has no separate web server."""

import os

from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bookshop.settings")
application = StaticFilesHandler(get_wsgi_application())
