"""A router as projects with a second database write them: contenttypes and auth stay
on the main databases, so ``postgresql_other`` has no ``django_content_type`` table."""

WITHOUT_CONTENTTYPES = {"postgresql_other"}
MAIN_ONLY_APPS = {"contenttypes", "auth", "sessions", "admin"}


class ContentTypesOnDefault:
    """Refuse the apps that need contenttypes on the databases without them."""

    def allow_migrate(self, db, app_label, **hints):
        if db in WITHOUT_CONTENTTYPES and app_label in MAIN_ONLY_APPS:
            return False
        return None
