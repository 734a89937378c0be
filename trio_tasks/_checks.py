"""Argument checks shared by the public API: each error names the bad value and the fix."""

from __future__ import annotations

import math
import sys
from typing import Any, NoReturn, TypeVar

__all__ = ["MadeByTheLibrary", "check_number", "check_str", "error_text", "safe_repr", "shown"]

T = TypeVar("T")


def check_str(what: str, value: object, *, empty_ok: bool = True) -> None:
    """Raise TypeError unless ``value`` is a str (non-empty unless ``empty_ok``)."""
    if not isinstance(value, str) or not (empty_ok or value):
        kind = "str" if empty_ok else "non-empty str"
        raise TypeError(f"{what} must be a {kind}, got {safe_repr(value)} ({type(value).__name__})")


def check_number(
    what: str,
    value: object,
    *,
    low: float = 0,
    low_ok: bool = True,
    inf_ok: bool = False,
    unit: str = "",
    hint: str = "",
) -> None:
    """Raise unless ``value`` is an int or float (not a bool) above ``low``.

    ``low_ok`` admits ``low`` itself, ``inf_ok`` admits infinity; NaN is
    never admitted, nor an int too large for a float (Trio's times are
    floats). ``unit`` (" seconds") and ``hint`` complete the message.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        of = f" of{unit}" if unit else ""
        raise TypeError(f"{what} must be a number{of}{hint}, got {safe_repr(value)} ({type(value).__name__})")
    above = value >= low if low_ok else value > low
    if not (above and (inf_ok or value < math.inf)):  # NaN fails every comparison
        raise ValueError(f"{what} must be {_bound(low, low_ok, inf_ok, unit)}{hint}, got {shown(value)}")
    if isinstance(value, int) and value > sys.float_info.max:  # an int that no float holds: Trio would fail
        instead = "; use math.inf for no limit" if inf_ok else ""
        raise ValueError(f"{what} is too large: got {_digits(value)}, more than a float holds{instead}")


def shown(value: object) -> str:
    """``repr(value)`` for an error message, or the size of an int too long for that."""
    return _digits(value) if isinstance(value, int) and _too_long(value) else repr(value)


def error_text(exc: BaseException) -> str:
    """``str(exc)`` for a message: its type's name if that is empty, or if its ``__str__`` fails."""
    try:
        text = str(exc)
    except Exception:
        return f"{type(exc).__name__} (its str() failed)"
    return text or type(exc).__name__


def safe_repr(value: object) -> str:
    """:func:`shown`, or a placeholder naming the type if ``value``'s ``__repr__`` fails."""
    try:
        return shown(value)
    except Exception:
        return f"<a {type(value).__name__} whose repr() failed>"


def _too_long(value: int) -> bool:
    """True if ``str(value)`` could refuse to convert it (Python limits the digits, 4,300 by default; this
    errs on the safe side by a digit)."""
    limit = getattr(sys, "get_int_max_str_digits", lambda: 0)()
    return bool(limit) and value.bit_length() * math.log10(2) >= limit - 1


def _digits(value: int) -> str:
    sign = "a negative" if value < 0 else "an"
    if _too_long(value):
        return f"{sign} int of about {int(value.bit_length() * math.log10(2)) + 1:,} digits"
    return f"{sign} int of {len(str(abs(value)))} digits"


def _bound(low: float, low_ok: bool, inf_ok: bool, unit: str) -> str:
    bound = f"{'>=' if low_ok else '>'} {low:g}{unit}"
    return bound if inf_ok else f"{bound} and finite"


class MadeByTheLibrary(type):
    """The metaclass of a public class only trio_tasks itself makes: calling the class raises TypeError
    naming the way to get one (its ``_how`` attribute); the library makes one with ``cls._create(...)``."""

    _how: str

    def __call__(cls, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(f"trio_tasks.{cls.__qualname__} is not made directly: {cls._how}")

    def _create(cls: type[T], *args: Any, **kwargs: Any) -> T:
        return type.__call__(cls, *args, **kwargs)  # type: ignore[no-any-return]
