"""Fast, strict JSON encoding and decoding of topic messages (msgspec)."""

from __future__ import annotations

import re
from typing import Generic, TypeVar

import msgspec

from pairstream.messages import Message

M = TypeVar("M", bound=Message)

_AT = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`$")
_OWN = re.compile(r"^(?P<name>[A-Za-z_][\w\[\]./]*): (?P<reason>.+)$", re.DOTALL)


class MessageDecodeError(ValueError):
    """A message that does not fit its topic's schema: names the topic, the field and why."""

    def __init__(self, topic: str, field: str, reason: str) -> None:
        self.topic = topic
        self.field = field
        self.reason = reason
        super().__init__(f"topic {topic!r}: field {field!r}: {reason}")


def _join(path: str, name: str) -> str:
    if not path:
        return name
    return f"{path}.{name}" if not name.startswith("[") else f"{path}{name}"


def explain(error: msgspec.MsgspecError) -> tuple[str, str]:
    """Split a msgspec error into ``(field, reason)``; the field is ``$`` for the whole message."""
    text = str(error)
    if isinstance(error, msgspec.DecodeError) and not isinstance(error, msgspec.ValidationError):
        return "$", text
    match = _AT.match(text)
    assert match is not None  # the pattern accepts any text
    reason, path = match.group("reason"), (match.group("path") or "").lstrip(".")
    missing = _MISSING.match(reason)
    if missing:
        return _join(path, missing.group("name")), "required field is missing"
    own = _OWN.match(reason)
    if own:  # raised by a message's own validation: "<field>: <reason>"
        return _join(path, own.group("name")), own.group("reason")
    return path or "$", reason


class Codec(Generic[M]):
    """Encoder/decoder for one topic's message type."""

    __slots__ = ("_decoder", "_encoder", "message", "topic")

    def __init__(self, topic: str, message: type[M]) -> None:
        self.topic = topic
        self.message = message
        self._decoder: msgspec.json.Decoder[M] = msgspec.json.Decoder(message)
        self._encoder = msgspec.json.Encoder()

    def encode(self, message: M) -> bytes:
        """JSON bytes of ``message`` (already validated when it was built)."""
        if not isinstance(message, self.message):
            raise TypeError(
                f"topic {self.topic!r} carries {self.message.__name__}, "
                f"not {type(message).__name__}"
            )
        return self._encoder.encode(message)

    def decode(self, data: bytes | str) -> M:
        """Parse and validate; raises :class:`MessageDecodeError` with topic, field and reason."""
        try:
            return self._decoder.decode(data)
        except msgspec.MsgspecError as error:
            field, reason = explain(error)
            raise MessageDecodeError(self.topic, field, reason) from error


def codec_for(topic: str) -> Codec[Message]:
    """The codec of a topic named in the settings (see :mod:`pairstream.topics`)."""
    from pairstream.topics import topic_spec

    spec = topic_spec(topic)
    return Codec(spec.name, spec.message)
