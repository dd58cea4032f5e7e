"""The admin, for ``python3 dev.py demo --admin``."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]
