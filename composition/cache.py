"""Answers kept on disk, one JSON line per (expert, item), so an interrupted eval resumes where it stopped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class AnswerCache:
    """Append-only JSON lines per expert; a later line for the same key wins."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._rows: dict[tuple[str, str], dict[str, Any]] = {}
        folder.mkdir(parents=True, exist_ok=True)
        for path in sorted(folder.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").split("\n"):
                try:
                    row = json.loads(line)
                    self._rows[(row["key"], row["id"])] = row
                except (ValueError, KeyError):
                    continue  # a line cut short by a kill: that item is asked again

    def get(self, key: str, item_id: str) -> dict[str, Any] | None:
        """The stored result for this expert key and item, if any."""
        return self._rows.get((key, item_id))

    def put(self, key: str, item_id: str, row: dict[str, Any]) -> None:
        """Store and flush one result at once (a kill loses at most the line being written)."""
        row = {**row, "key": key, "id": item_id}
        self._rows[(key, item_id)] = row
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:120]
        with (self.folder / f"{name}.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row, sort_keys=True) + "\n")
