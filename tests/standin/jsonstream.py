"""Incremental JSON object stream parser (lightningd parses with jsmn, no delimiter needed)."""
import codecs
import json
import re

_DECODER = json.JSONDecoder()
_LITERAL_PREFIXES = ("true", "false", "null")
_NUMBER_PREFIX = re.compile(r"-?[0-9]*\.?[0-9]*([eE][-+]?[0-9]*)?\s*$")


class InvalidJSON(ValueError):
    """The stream holds text that can never become valid JSON."""


def _incomplete(buf: str, err: json.JSONDecodeError) -> bool:
    """True when the decode error only means 'more bytes needed'."""
    if err.pos >= len(buf.rstrip()) or err.msg.startswith("Unterminated string"):
        return True
    rest = buf[err.pos:]
    return any(lit.startswith(rest) for lit in _LITERAL_PREFIXES) or bool(_NUMBER_PREFIX.match(rest))


class JSONStream:
    """Feed bytes, get back the complete JSON values found so far."""

    def __init__(self):
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._buf = ""

    @property
    def pending(self) -> str:
        return self._buf

    def feed(self, data: bytes) -> list:
        """Returns decoded values; raises InvalidJSON (with the offending text) on garbage."""
        try:
            self._buf += self._utf8.decode(data)
        except UnicodeDecodeError as e:
            raise InvalidJSON("invalid UTF-8: %s" % e)
        out = []
        while True:
            stripped = self._buf.lstrip()
            if not stripped:
                self._buf = ""
                return out
            try:
                value, end = _DECODER.raw_decode(stripped)
            except json.JSONDecodeError as e:
                if _incomplete(stripped, e):
                    self._buf = stripped
                    return out
                raise InvalidJSON(stripped[:200])
            # A bare scalar at the end of the buffer may still be growing ("12" -> "123").
            if not isinstance(value, (dict, list)) and end == len(stripped):
                self._buf = stripped
                return out
            out.append(value)
            self._buf = stripped[end:]
