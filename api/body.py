"""The one request-body decoder of the service: every handler's ``data: T`` is decoded strictly into ``T``.

litestar's default body handling decodes the JSON into Python objects and then converts them into the
handler's type with ``strict=False``, which coerces ("1e21" becomes 1e21, "true" becomes True). The schema
promises no coercion, so the app installs ``StrictBody`` as its data DTO: it decodes the raw bytes straight
into the annotated struct with one cached ``msgspec.json.Decoder`` per type (strict, unknown fields refused
where the struct says ``forbid_unknown_fields``), and turns decoding failures into the same problem details
as every other validation error. Handlers receive the decoded struct once and never read the body again.

It is a DTO only in litestar's plumbing: no transfer model is generated, the OpenAPI schema is the struct's
own, and responses are encoded as usual (the app sets ``return_dto=None``).

Only JSON is decoded: a body sent as anything but ``application/json`` (or a ``+json`` type; no content type at
all is read as JSON) is a 415, so an image or a form is never taken for a plan request.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, ClassVar

import msgspec
from litestar.dto import AbstractDTO
from litestar.typing import FieldDefinition

from api.problems import ApiProblem, msgspec_problem
from api.schemas import FieldError


class StrictBody(AbstractDTO[Any]):
    """Decode each handler's body strictly into its ``data`` annotation (see the module docstring)."""

    _decoders: ClassVar[dict[str, msgspec.json.Decoder[Any]]] = {}
    """handler id → the decoder of that handler's data type."""

    @classmethod
    def generate_field_definitions(cls, model_type: type[Any]) -> Generator[Any, None, None]:
        yield from ()  # no transfer model: the struct is decoded as it is

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False

    @classmethod
    def create_for_field_definition(cls, field_definition: FieldDefinition, handler_id: str,
                                    backend_cls: Any = None) -> None:
        if field_definition.name == "data":
            cls._decoders[handler_id] = msgspec.json.Decoder(field_definition.annotation)

    @classmethod
    def create_openapi_schema(cls, field_definition: FieldDefinition, handler_id: str, schema_creator: Any) -> Any:
        # The struct's own component first, so the body's description and examples wrap a reference to it
        # instead of being written into the component.
        schema_creator.for_field_definition(FieldDefinition.from_annotation(field_definition.annotation))
        return schema_creator.for_field_definition(field_definition)

    def decode_bytes(self, value: bytes) -> Any:
        check_media_type(self.asgi_connection.headers.get("content-type"))
        return decode(self._decoders[self.asgi_connection.route_handler.handler_id], value)

    def decode_builtins(self, value: dict[str, Any]) -> Any:  # pragma: no cover - JSON bodies only
        decoder = self._decoders[self.asgi_connection.route_handler.handler_id]
        return decode(decoder, msgspec.json.encode(value))


def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type names JSON (``application/json``, ``application/<x>+json``; parameters ignored)."""
    if content_type is None or not content_type.strip():
        return True  # no type given: the body is read as the JSON every endpoint takes
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def check_media_type(content_type: str | None) -> None:
    """A 415 problem unless the body is declared as JSON."""
    if not is_json(content_type):
        shown = content_type if len(content_type or "") <= 80 else f"{content_type[:80]}…"
        raise ApiProblem(415, f"the request body must be application/json, not {shown}", field="Content-Type",
                         source="header")


def _whole(node: Any) -> Any:
    """``node`` with every float of integral value (10291.0) as an int, within the range of a stored integer."""
    if isinstance(node, float) and node.is_integer() and abs(node) < 2**63:
        return int(node)
    if isinstance(node, dict):
        return {key: _whole(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_whole(value) for value in node]
    return node


def decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """``body`` decoded by ``decoder``; a 400 problem when it is not JSON or not an object, else a 422 naming
    the field.

    JSON has one number type and JSON Schema's "integer" is any number of integral value, so ``10291.0`` is a
    valid integer field; msgspec refuses a float for an int, so such a body is decoded again with its integral
    floats written as ints (only after the first decode failed on one: the usual body is decoded once).
    """
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        message = str(exc)
        if "got `float`" in message and message.startswith("Expected `int"):
            try:
                return decoder.decode(msgspec.json.encode(_whole(msgspec.json.decode(body))))
            except msgspec.ValidationError as again:
                exc, message = again, str(again)
        if " - at `$" not in message and message.startswith("Expected `object`"):
            # The body as a whole is of the wrong kind (an array, a string, a number).
            detail = f"the request body must be a JSON object ({message.lower()})"
            raise ApiProblem(400, detail, errors=[FieldError(field="$", message=detail)]) from None
        raise msgspec_problem(exc) from None
    except msgspec.DecodeError as exc:  # after ValidationError, its subclass
        raise ApiProblem(400, f"the request body is not valid JSON ({exc})") from None
    except RecursionError:
        # msgspec recurses once per nesting level; no request of this API nests more than a few levels.
        raise ApiProblem(400, "the request body is nested too deeply to be a request of this API") from None
