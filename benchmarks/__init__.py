"""Benchmarks of the ``django-db`` result backend against a hand-written floor.

Run one engine at a time from the project root, inside the project's virtualenv::

    .venv/bin/python benchmarks/run.py --engine postgresql [--quick]

See ``BENCHMARKS.md`` for what each figure measures and the latest results.
"""
