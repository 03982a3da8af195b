"""The configuration reference of the docs, generated from the config schema.

``python -m bidsport.config_reference`` prints the table that ``docs/configuration.md``
holds between its ``config-reference`` markers (``tests/test_docs.py`` fails if they
differ), so the schema stays the one place where a key, its values and its default
are written.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .table import schema_dir

BEGIN = "<!-- config-reference:begin (python -m bidsport.config_reference) -->"
END = "<!-- config-reference:end -->"


def schema_path() -> Path:
    return schema_dir() / "config.schema.yaml"


def _values(spec: dict) -> str:
    """What a key accepts, shortly: its enum, item enum or JSON types."""
    if "enum" in spec:
        return ", ".join(f"`{v}`" for v in spec["enum"])
    if "oneOf" in spec:
        return " or ".join(_values(s) for s in spec["oneOf"])
    kind = spec.get("type", "")
    kinds = kind if isinstance(kind, list) else [kind]
    text = " or ".join(k for k in kinds if k)
    items = spec.get("items")
    if items and "enum" in items:
        text += " of " + ", ".join(f"`{v}`" for v in items["enum"])
    if "minimum" in spec:
        text += f" ≥ {spec['minimum']}"
    return text


def _default(key: str, spec: dict, required: set[str]) -> str:
    if key in required:
        return "required"
    if "default" not in spec:
        return ""
    return f"`{json.dumps(spec['default'])}`"


def table(schema: dict | None = None) -> str:
    """The reference table (markdown), one row per config key in schema order."""
    if schema is None:
        schema = yaml.safe_load(schema_path().read_text(encoding="utf-8"))
    required = set(schema.get("required", []))
    lines = ["| key | values | default | meaning |", "|---|---|---|---|"]
    for key, spec in schema["properties"].items():
        meaning = " ".join(str(spec.get("description", "")).split())
        for char, escaped in (("|", "\\|"), ("<", "&lt;"), ("*", "\\*")):
            meaning = meaning.replace(char, escaped)
        lines.append(f"| `{key}` | {_values(spec)} | {_default(key, spec, required)} | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
