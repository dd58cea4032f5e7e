"""Fixtures of the admin tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import uuid4

import pytest
from django.contrib.auth.models import Permission
from django.test import Client


@pytest.fixture
def staff(django_user_model: Any) -> Callable[..., Client]:
    """A logged-in client of a new staff user holding exactly the given permission codenames."""

    def login(*codenames: str) -> Client:
        user = django_user_model.objects.create_user(username=f"staff-{uuid4().hex[:8]}", is_staff=True)
        user.user_permissions.set(
            Permission.objects.filter(
                content_type__app_label="django_celery_results",
                codename__in=codenames,
            )
        )
        assert user.user_permissions.count() == len(codenames)
        client = Client()
        client.force_login(user)
        return client

    return login
