"""Application configuration."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CeleryResultConfig(AppConfig):
    """Default configuration for the ``django_celery_results`` app."""

    name = "django_celery_results"
    label = "django_celery_results"
    verbose_name = _("Celery Results")
    # Existing tables were created with 32-bit ids; keep them.
    default_auto_field = "django.db.models.AutoField"

    def ready(self) -> None:
        # Importing registers the system checks.
        from . import checks, signals  # noqa: F401

        signals.connect()
