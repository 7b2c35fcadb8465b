"""The webhook's JSON logger: Powertools' Logger with the same lines for less time.

A webhook request writes one line, and Powertools spent more on it than on validating the
alert: it tried to decode every message as JSON (prose fails, and the exception costs),
built a new JSON encoder for every line, and sorted the record's attributes from the extra
keys by scanning a tuple of 24 names for each of them. The first two are Powertools' own
options (``json_deserializer``, ``json_serializer``), given here behaviour for behaviour: a
message that JSON can decode is still decoded, and lines are encoded with Powertools'
settings (``default=str``, compact separators, UTF-8 kept, indented under
``POWERTOOLS_DEV``). The third is ``FastKeysFormatter``: Powertools' formatter with the same
key extraction over a set (its tests compare it with Powertools' on arbitrary records).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Final

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import (
    RESERVED_LOG_ATTRS,
    LambdaPowertoolsFormatter,
    _get_context,
)
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


_RESERVED: Final = frozenset(RESERVED_LOG_ATTRS)
_POWERTOOLS_TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S,%F%z"
"""Powertools' default time format; ``%F`` stands for the milliseconds."""
_UP_TO_MILLISECONDS: Final = "%Y-%m-%d %H:%M:%S,"


class FastKeysFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, writing the same lines in fewer steps.

    - the record's keys are told from the extras by a set (Powertools scans a tuple);
    - a line without an exception skips the exception steps, whose keys Powertools adds as
      ``None`` and then strips (``stack_trace`` too: an extra of that name is dropped, as
      Powertools drops it by setting it to ``None``);
    - the time stamp's text up to the milliseconds, and its offset, are kept for the second
      they belong to (Powertools formats them with ``time.strftime`` for every line).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._second: tuple[object, str, str] | None = None

    def format(self, record: logging.LogRecord) -> str:
        """Powertools' ``format``, minus the exception steps when the record has none."""
        if isinstance(record.exc_info, tuple):
            line: str = super().format(record)
            return line
        formatted_log = self._extract_log_keys(record)
        formatted_log["message"] = self._extract_log_message(record)
        if self.serialize_stacktrace:
            formatted_log["stack_trace"] = None
        formatted_log["xray_trace_id"] = self._get_latest_trace_id()
        return self.serialize({k: v for k, v in formatted_log.items() if v is not None})

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """Powertools' default time stamp (``2021-05-03 10:20:19,650+0200``), cached by second.

        ``time.localtime`` (or ``gmtime``) gives the same fields for every instant of a
        second, so only the milliseconds differ within one. The cache is keyed by the
        second, the converter and the process's time zone (``time.tzset`` changes it).
        Any other format goes to Powertools.
        """
        if (
            datefmt is not None
            or self.datefmt is not None
            or self.use_rfc3339_iso8601
            or self.default_time_format != _POWERTOOLS_TIME_FORMAT
            or record.created < 0
        ):
            stamp: str = super().formatTime(record, datefmt)
            return stamp
        key = (int(record.created), self.converter, time.timezone, time.altzone, time.tzname)
        second = self._second
        if second is None or second[0] != key:
            fields = self.converter(record.created)
            second = (key, time.strftime(_UP_TO_MILLISECONDS, fields), time.strftime("%z", fields))
            self._second = second
        return f"{second[1]}{'%03d' % record.msecs}{second[2]}"  # noqa: UP031  # as Powertools

    def _extract_log_keys(self, log_record: logging.LogRecord) -> dict[str, Any]:
        """Powertools' own steps (aws_lambda_powertools 3.23), in the same order."""
        record_dict = log_record.__dict__.copy()
        record_dict["asctime"] = self.formatTime(record=log_record)
        extras = {k: v for k, v in record_dict.items() if k not in _RESERVED}
        formatted_log: dict[str, Any] = {}
        for keys in (self.log_format, _get_context().get()):
            for key, value in keys.items():
                if value and key in _RESERVED:
                    if not isinstance(value, str):
                        raise ValueError(
                            "Logging keys that override reserved log attributes need to be type "
                            f"'str', instead got '{type(value).__name__}'",
                        )
                    formatted_log[key] = value % record_dict
                else:
                    formatted_log[key] = value
        formatted_log.update(**extras)
        return formatted_log


def make_formatter() -> FastKeysFormatter:
    """The formatter with the decoder and encoder above (Powertools' defaults otherwise)."""
    return FastKeysFormatter(
        json_deserializer=json_message, json_serializer=json_line_encoder().encode
    )


def make_logger(service: str) -> Logger:
    """Powertools' Logger for ``service``, writing through ``make_formatter()``."""
    return Logger(service=service, logger_formatter=make_formatter())
