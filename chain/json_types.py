"""JSON whose members the reader does not interpret, typed for pydantic and mypy alike.

Contract arguments, event data, proof bundles (their format is docs/protocol.md's, checked by
chain.light) and the services' pass-through payloads (a credential's claims, a JSON Schema).
"""

from typing import Annotated, Any

from pydantic import GetPydanticSchema, JsonValue

JsonObject = dict[str, JsonValue]

# A JsonObject to mypy and to readers that pydantic handles as a dict[str, Any]: checked to be
# an object (same error), its members written out as they are, same JSON Schema. Checking each
# member as a JsonValue costs 30-60x on the services' hot answers (a verify answer's six ~2.7 kB
# proof bundles: 1.3 -> 66 us to validate, 15 -> 95 us to dump). For what comes from JSON or
# from the chain, whose members are JSON already.
JsonObjectAsIs = Annotated[
    JsonObject, GetPydanticSchema(lambda _type, handler: handler(dict[str, Any]))
]

__all__ = ["JsonObject", "JsonObjectAsIs", "JsonValue"]
