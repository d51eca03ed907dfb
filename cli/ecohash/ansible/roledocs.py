"""Each role's README.md, rendered from its meta/argument_specs.yml (scripts/gen-docs).

Galaxy refuses a collection whose roles have no README; the argument specs are where a
role's variables are declared, so the README says only what they say.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def render_role_readme(role: Path, collection: str) -> str:
    """README.md text for the role directory ROLE of the collection named COLLECTION."""
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    main = specs["main"]
    lines = [
        f"# {collection}.{role.name}",
        "",
        "<!-- Generated from meta/argument_specs.yml by scripts/gen-docs; edit that file. -->",
        "",
        f"{main['short_description']}.",
        "",
        *[f"{paragraph.strip()}\n" for paragraph in _as_list(main.get("description"))],
        "## Variables",
        "",
        "| variable | type | required | default | description |",
        "|---|---|---|---|---|",
    ]
    for name, option in sorted((main.get("options") or {}).items()):
        default = f"`{option['default']}`" if "default" in option else ""
        description = " ".join(" ".join(_as_list(option.get("description"))).split())
        required = "yes" if option.get("required") else "no"
        lines.append(f"| `{name}` | {option.get('type', 'str')} | {required} "
                     f"| {_cell(default)} | {_cell(description)} |")
    return "\n".join(lines) + "\n"


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(item) for item in value] if isinstance(value, list) else [str(value)]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
