"""What the tests share: helpers, real processes and servers, the schema catalogue."""

from pathlib import Path

#: The project's root (where pyproject.toml is).
ROOT = Path(__file__).resolve().parents[2]
