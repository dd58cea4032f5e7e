"""The demo's tasks: plain arithmetic, a failure, and a task that retries before succeeding."""

from __future__ import annotations

from typing import Any

from .celery_app import app


@app.task(name="demo.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="demo.mul")
def mul(x: int, y: int) -> int:
    return x * y


@app.task(name="demo.total")
def total(numbers: list[int]) -> int:
    return sum(numbers)


@app.task(name="demo.fail")
def fail(message: str) -> None:
    raise ValueError(message)


@app.task(name="demo.flaky", bind=True, max_retries=5)
def flaky(self: Any, failures: int) -> str:
    """Fail ``failures`` times (each stored as RETRY), then succeed."""
    if self.request.retries < failures:
        raise self.retry(exc=ConnectionError("not yet"), countdown=0.2)
    return f"ok after {self.request.retries} retries"
