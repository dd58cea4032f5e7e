"""Reading what was published to a broker, for tests that check callbacks were sent."""

from __future__ import annotations

from typing import Any

from kombu import Connection


def drain(connection: Connection, queue_name: str = "celery") -> list[Any]:
    """Every message waiting in ``queue_name``, acknowledged (so the next call sees only new ones)."""
    messages = []
    with connection as conn, conn.SimpleQueue(queue_name) as queue:
        while True:
            try:
                message = queue.get(timeout=0.2)
            except queue.Empty:
                return messages
            messages.append(message)
            message.ack()
