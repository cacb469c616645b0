"""JSON whose members the reader does not interpret, typed for pydantic and mypy alike.

Contract arguments, event data, proof bundles (their format is docs/protocol.md's, checked by
chain.light) and the services' pass-through payloads (a credential's claims, a JSON Schema).
"""

import json
from typing import Annotated, Any

from pydantic import AfterValidator, GetPydanticSchema, JsonValue
from pydantic_core import PydanticCustomError

JsonObject = dict[str, JsonValue]
NOT_UNICODE_TEXT = (
    "holds a string that is not Unicode text (an unpaired surrogate escape such as \\ud800)"
)

# A JsonObject to mypy and to readers that pydantic handles as a dict[str, Any]: checked to be
# an object (same error), its members written out as they are, same JSON Schema. Checking each
# member as a JsonValue costs 30-60x on the services' hot answers (a verify answer's six ~2.7 kB
# proof bundles: 1.3 -> 66 us to validate, 15 -> 95 us to dump). For what comes from JSON or
# from the chain, whose members are JSON already.
JsonObjectAsIs = Annotated[
    JsonObject, GetPydanticSchema(lambda _type, handler: handler(dict[str, Any]))
]


def is_unicode_text(value: Any) -> bool:
    """Whether every string in the JSON value `value` (member names included) is Unicode
    text. JSON can write one that is not: an unpaired surrogate escape ("\\ud800") reads
    into a Python string that no UTF-8 encoder (a signature's, a hash's, a database's, an
    error answer's) accepts."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unicode_text(value: dict[str, Any]) -> dict[str, Any]:
    if not is_unicode_text(value):
        # Its own message, without the "Value error, " pydantic puts before a ValueError's
        raise PydanticCustomError("unicode_text", NOT_UNICODE_TEXT)
    return value


# A JsonObjectAsIs a request brings, refused (422 with the reason) where a string in it is not
# Unicode text, rather than failing wherever it is first encoded
JsonObjectIn = Annotated[JsonObjectAsIs, AfterValidator(_unicode_text)]

__all__ = [
    "NOT_UNICODE_TEXT",
    "JsonObject",
    "JsonObjectAsIs",
    "JsonObjectIn",
    "JsonValue",
    "is_unicode_text",
]
