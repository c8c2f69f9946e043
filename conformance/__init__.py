"""Django's own test modules, run unmodified with django_asyncdb installed."""
