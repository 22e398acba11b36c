"""Compose's merge of an override file (`docker compose -f base.yaml -f override.yaml`), as far as
deploy/ uses it: a service's mappings (`environment`, `depends_on`) are merged by key, other keys
replaced; new services and volumes are added. Relative paths stay relative to the first file's folder.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["merge_compose"]


def merge_compose(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for name, service in (override.get("services") or {}).items():
        target = merged["services"].setdefault(name, {})
        for key, value in service.items():
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                target[key] = {**target[key], **value}
            else:
                target[key] = value
    merged["volumes"] = {**(merged.get("volumes") or {}), **(override.get("volumes") or {})}
    return merged
