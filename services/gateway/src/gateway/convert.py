"""The one place where protobuf messages meet JSON.

Replies become plain dicts with the proto field names; enum values travel as
short lower-case names (BOOKING_STATUS_CONFIRMED -> "confirmed", ROLE_FINANCE
-> "finance"). Pydantic models for the OpenAPI document are derived from the
same descriptors, so the HTTP shapes follow the protos without a second copy.
"""
from __future__ import annotations

import datetime as dt
import enum
import re
from typing import Annotated, Any, Mapping, TypeVar

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from pydantic import AfterValidator, BaseModel, Field, StrictBool, create_model

M = TypeVar("M", bound=Message)

UNSPECIFIED = "unspecified"


def _utf8(value: str) -> str:
    # JSON may spell a lone UTF-16 surrogate ("\ud800"); a proto string is UTF-8 and
    # cannot hold one, so it is refused here (422 naming the field) rather than by protobuf (500).
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogates)") from None
    return value


# The types of request fields that become proto fields: every string of a request
# model is Text, every integer one of these widths; a value the proto cannot hold is 422.
# Integers and booleans are strict, as the OpenAPI document types them: pydantic's lax
# mode would read true as 1 (a one-day device token), "30" as 30 and "yes" or 1 as true
# (slots released to patients now), guessing at a request no client meant to send so.
Text = Annotated[str, AfterValidator(_utf8)]
Int32 = Annotated[int, Field(strict=True, ge=-(2**31), le=2**31 - 1)]
UInt32 = Annotated[int, Field(strict=True, ge=0, le=2**32 - 1)]
Int64 = Annotated[int, Field(strict=True, ge=-(2**63), le=2**63 - 1)]
UInt64 = Annotated[int, Field(strict=True, ge=0, le=2**64 - 1)]

_SCALARS: dict[int, Any] = {
    FieldDescriptor.TYPE_STRING: Text,
    FieldDescriptor.TYPE_BOOL: StrictBool,
    FieldDescriptor.TYPE_BYTES: bytes,
    FieldDescriptor.TYPE_DOUBLE: float,
    FieldDescriptor.TYPE_FLOAT: float,
    **dict.fromkeys((FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32), Int32),
    **dict.fromkeys((FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32), UInt32),
    **dict.fromkeys((FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64), Int64),
    **dict.fromkeys((FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64), UInt64),
}


def _enum_prefix(descriptor: EnumDescriptor) -> str:
    # buf's ENUM_VALUE_PREFIX rule: values start with the enum's name in UPPER_SNAKE.
    return re.sub(r"(?<!^)(?=[A-Z])", "_", descriptor.name).upper() + "_"


def enum_name(descriptor: EnumDescriptor, number: int) -> str:
    value = descriptor.values_by_number.get(number)
    # A newer service may send a value this gateway does not know yet.
    if value is None:
        return UNSPECIFIED
    return value.name.removeprefix(_enum_prefix(descriptor)).lower()


def enum_number(descriptor: EnumDescriptor, name: str) -> int:
    return descriptor.values_by_name[_enum_prefix(descriptor) + str(name).upper()].number


def to_dict(message: Message) -> dict[str, Any]:
    """A reply as JSON-ready data: every field, defaults included."""
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        out[field.name] = [_value(field, v) for v in value] if field.is_repeated else _value(field, value)
    return out


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.message_type is not None:
        return to_dict(value)
    if field.enum_type is not None:
        return enum_name(field.enum_type, value)
    return value


def fill(message: M, data: Mapping[str, Any]) -> M:
    """Sets ``message``'s fields from JSON data (enum values by short name); None leaves a field unset."""
    fields = message.DESCRIPTOR.fields_by_name
    for name, value in data.items():
        if value is None:
            continue
        field = fields[name]
        items = list(value) if field.is_repeated else [value]
        if field.message_type is not None:
            for item in items:
                fill(getattr(message, name).add() if field.is_repeated else getattr(message, name), item)
            continue
        if field.enum_type is not None:
            items = [enum_number(field.enum_type, item) for item in items]
        if field.is_repeated:
            getattr(message, name).extend(items)
        else:
            setattr(message, name, items[0])
    return message


_enums: dict[str, type[enum.StrEnum]] = {}
_models: dict[str, type[BaseModel]] = {}


def enum_model(descriptor: EnumDescriptor) -> type[enum.StrEnum]:
    if descriptor.full_name not in _enums:
        names = [enum_name(descriptor, v.number) for v in descriptor.values]
        _enums[descriptor.full_name] = enum.StrEnum(descriptor.name, {n: n for n in names})
    return _enums[descriptor.full_name]


def message_model(message: type[Message] | Descriptor) -> type[BaseModel]:
    """A pydantic model with the message's fields, for requests and replies."""
    descriptor: Descriptor = getattr(message, "DESCRIPTOR", message)
    if descriptor.full_name in _models:
        return _models[descriptor.full_name]
    taken = {m.__name__ for m in _models.values()}
    if descriptor.name in taken:
        raise RuntimeError(f"two protos define {descriptor.name}: the OpenAPI schema names would clash")
    fields: dict[str, Any] = {}
    for field in descriptor.fields:
        if field.message_type is not None:
            kind: Any = message_model(field.message_type)
        elif field.enum_type is not None:
            kind = enum_model(field.enum_type)
        else:
            kind = _SCALARS[field.type]
        if field.is_repeated:
            fields[field.name] = (list[kind], Field(default_factory=list))
        elif field.message_type is not None:
            fields[field.name] = (kind, Field(default_factory=kind))
        elif field.enum_type is not None:
            fields[field.name] = (kind, kind(UNSPECIFIED))
        else:
            # The proto3 zero value: 0, "", False, b"".
            fields[field.name] = (kind, field.default_value)
    model = create_model(descriptor.name, __module__=__name__, **fields)
    _models[descriptor.full_name] = model
    return model


def date_text(value: dt.date | None) -> str:
    """A date for a proto field: YYYY-MM-DD, or empty for "the service's default"."""
    return value.isoformat() if value else ""
