"""Admin registrations (placeholder; the full admin is built next)."""

from django.contrib import admin

from .models import GroupResult, TaskResult

admin.site.register(TaskResult)
admin.site.register(GroupResult)
