"""The JSON Schema of canonical events, generated from the msgspec types (``bastion.events.model``).

``python -m bastion.events.schema > docs/events.schema.json`` regenerates the file shipped in docs/.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec

from bastion.events.model import Event


def json_schema() -> dict[str, Any]:
    schema: dict[str, Any] = msgspec.json.schema(Event)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Bastion canonical event, version 1"
    schema["description"] = ("One event per JSON Lines row. Unknown `type` values are accepted as generic events "
                             "(envelope fields required, other fields kept).")
    return schema


if __name__ == "__main__":
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
