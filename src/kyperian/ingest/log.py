"""The webhook's JSON logger: Powertools' Logger with the same lines for less time.

A webhook request writes one line, and Powertools spent more on it than on validating the
alert: it tried to decode every message as JSON (prose fails, and the exception costs)
and built a new JSON encoder for every line. Both are Powertools' own options
(``json_deserializer``, ``json_serializer``), given here behaviour for behaviour: a message
that JSON can decode is still decoded, and lines are encoded with Powertools' settings
(``default=str``, compact separators, UTF-8 kept, indented under ``POWERTOOLS_DEV``).
"""

from __future__ import annotations

import json
from typing import Any, Final

from aws_lambda_powertools import Logger
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import powertools_dev_is_set

_JSON_STARTS: Final = frozenset('{["-0123456789tfnNI')
"""What a JSON text can start with (``NaN`` and ``Infinity`` too, as ``json.loads`` reads)."""


def json_message(message: Any) -> Any:
    """Decode a message that is JSON text, as Powertools does; answer prose at once.

    ``json.loads`` fails on a text no JSON value can start with, and the formatter then
    keeps the text: returning it untried gives the same line without raising and catching.
    Anything else goes to ``json.loads`` (whose errors the formatter catches, as before).
    """
    if isinstance(message, str) and message.lstrip()[:1] not in _JSON_STARTS:
        return message
    return json.loads(message)


def json_line_encoder() -> json.JSONEncoder:
    """One encoder with the settings Powertools passes to ``json.dumps`` for every line."""
    indent = constants.PRETTY_INDENT if powertools_dev_is_set() else constants.COMPACT_INDENT
    return json.JSONEncoder(default=str, separators=(",", ":"), indent=indent, ensure_ascii=False)


def make_logger(service: str) -> Logger:
    """Powertools' Logger for ``service``, with the decoder and encoder above."""
    return Logger(
        service=service,
        json_deserializer=json_message,
        json_serializer=json_line_encoder().encode,
    )
