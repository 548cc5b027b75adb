"""RFC 3339 timestamps: the only time format the supervisor reads or writes."""

from __future__ import annotations

import re
from datetime import UTC, datetime

# fromisoformat() alone also accepts dates without a time, week dates and naive times; RFC 3339
# wants a full date, a time and a zone.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)


def parse_time(text: str) -> datetime:
    """Parses an RFC 3339 timestamp; raises ValueError for anything else, naive ones included."""
    if not isinstance(text, str) or not _RFC3339.fullmatch(text):
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp with a zone")
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError as error:
        if "offset must be a timedelta" in str(error):
            raise ValueError(f"{text!r}: a UTC offset must be less than 24 hours") from None
        raise ValueError(f"{text!r} is not a valid date and time ({error})") from None
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{text!r} is outside the supported range of dates") from None
    return moment


def is_time(text: object) -> bool:
    """The JSON Schema `date-time` format check."""
    if not isinstance(text, str):
        return True  # format only constrains strings; `type` reports the rest
    try:
        parse_time(text)
    except ValueError:
        return False
    return True


def format_time(moment: datetime) -> str:
    """UTC, with `Z`, and fractions of a second only when there are some."""
    moment = moment.astimezone(UTC)
    # Not strftime: its %Y does not pad years before 1000 to four digits on every platform.
    text = moment.replace(tzinfo=None, microsecond=0).isoformat()
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"
