"""Smoke tests in containers (pytest-celery): see test_smoke.py."""
