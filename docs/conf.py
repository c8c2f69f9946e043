"""Sphinx configuration: the documentation of django-asyncdb, built from docs/.

`nox -s docs` (or `sphinx-build -W --keep-going docs docs/_build/html`) builds it; warnings
are errors.
"""

import sys
from pathlib import Path

import django
from django.conf import settings

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(HERE.parent / "src"))

# The API reference imports the package's modules, and the patch list is read from the
# installed package: both need Django set up (an in-memory SQLite database, no server).
settings.configure(
    INSTALLED_APPS=["django.contrib.contenttypes", "django_asyncdb"],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    USE_TZ=True,
)
django.setup()

import django_asyncdb  # noqa: E402

project = "django-asyncdb"
author = "The django-asyncdb authors"
copyright = "2026, the django-asyncdb authors"
release = django_asyncdb.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "patchlist",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "furo"
html_title = f"django-asyncdb {release}"
