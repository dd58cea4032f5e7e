"""Reading what was published to a broker, for tests that check callbacks were sent."""

from __future__ import annotations

from pathlib import Path
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


def published_to_folder(broker_dir: Path) -> list[Any]:
    """Every message waiting in the default queue of the filesystem broker kept in ``broker_dir``."""
    return drain(
        Connection(
            "filesystem://",
            transport_options={
                "data_folder_in": str(broker_dir),
                "data_folder_out": str(broker_dir),
                "control_folder": str(broker_dir / "control"),
            },
        )
    )
