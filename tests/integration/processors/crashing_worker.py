"""A test hook, not a product flag: ``revstream worker`` that dies right after a local state write.

Run as ``python -m tests.integration.processors.crashing_worker``: the first time the ``contracts``
table's local store is written with an invoice state that holds payment ``PAY1``, the process
exits at once (``os._exit``, like ``kill -9``: nothing flushed, nothing acknowledged). That is the
moment the local store holds a batch and nothing after that write has happened; before the fix
of the write order, the batch's changelog records had not been delivered at that point.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from processors.engine.state import PartitionedTable
from processors.stages.accounting import CONTRACTS

EXIT_CODE = 137
_write = PartitionedTable.write


def _write_then_die(self: PartitionedTable, partition: int, items: Any) -> None:
    _write(self, partition, items)
    if self.name == CONTRACTS and any(
        key.startswith(b"inv:") and value is not None and b"PAY1" in value for key, value in items.items()
    ):
        os._exit(EXIT_CODE)


if __name__ == "__main__":
    PartitionedTable.write = _write_then_die  # type: ignore[method-assign]
    from revstream.cli import main

    sys.argv = ["revstream", "worker"]
    main()
