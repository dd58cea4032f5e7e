"""A tiny Django project that runs the ``django-db`` result backend end to end.

``python3 dev.py demo`` migrates an SQLite file under ``demo/state/``, starts a
real ``celery worker`` on kombu's ``filesystem://`` broker (no server needed),
sends a few kinds of work and prints the rows the worker stored.
"""
