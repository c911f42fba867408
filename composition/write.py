"""`--write`: the measured rankings become the registry's `routing:` section, with the table's provenance."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

import yaml

HEADER_START = "# Measured by `coe experts eval --write`"
_TOP_LEVEL_ROUTING = re.compile(r"^routing:.*?(?=^\S|\Z)", re.DOTALL | re.MULTILINE)


def routing_section(registry_path: Path, table_path: Path, metric: str, ranking: dict[str, list[str]]) -> str:
    """The YAML text of a `routing:` section pointing at `table_path` (relative to the registry when possible)."""
    try:
        table_ref = str(table_path.resolve().relative_to(registry_path.resolve().parent))
    except ValueError:
        table_ref = str(table_path.resolve())
    section = {
        "routing": {
            "table": table_ref,
            "sha256": hashlib.sha256(table_path.read_bytes()).hexdigest(),
            "measured": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "metric": metric,
            "ranked": ranking,
        }
    }
    header = HEADER_START + ": per category the experts best first (auto uses the first,\n"
    header += "# failover follows the order). The checksum ties it to the table file; re-run the eval to change it.\n"
    return header + yaml.safe_dump(section, sort_keys=False, default_flow_style=None, width=120)


def write_routing(registry_path: Path, table_path: Path, metric: str, ranking: dict[str, list[str]]) -> None:
    """Replace the registry's `routing:` section (or append one), leaving the rest of the file as written."""
    text = registry_path.read_text(encoding="utf-8")
    marker = text.find(HEADER_START)
    text = text[:marker] if marker >= 0 else _TOP_LEVEL_ROUTING.sub("", text)
    section = routing_section(registry_path, table_path, metric, ranking)
    registry_path.write_text(text.rstrip("\n") + "\n" + section, encoding="utf-8")
