"""System checks: configuration problems reported by ``manage.py check`` and ``migrate``."""
