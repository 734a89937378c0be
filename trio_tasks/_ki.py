"""Ctrl-C protection: the library's own code holds a KeyboardInterrupt back to a checkpoint, as Trio's does.

Trio raises a KeyboardInterrupt where the signal lands, unless the code
running there is marked protected; then it delivers it to the main task at
its next checkpoint. A KeyboardInterrupt raised in the middle of the
manager's bookkeeping (a task half ended, a start half made) could lose a
terminal or hang ``trio.run``, so every function of trio_tasks is marked
protected when its module is imported. Task bodies are marked unprotected:
a Ctrl-C interrupts a body where it is, as it would any Trio task. The
callbacks the library calls (``on_terminal``, ``on_agent_notice``, a
plugin's ``on_disabled`` hooks) run protected, as Trio's own callbacks do:
a Ctrl-C during one reaches the main task at its next checkpoint.

The marks are on code objects (``trio.lowlevel.enable_ki_protection``):
they cost nothing when the code runs.
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
from collections.abc import Iterator
from typing import Any, final

import trio

__all__ = ["body_code", "protect", "protect_library", "unprotect", "unprotect_body"]


@final
class _Code:
    """What ``trio.lowlevel``'s protection marks read: an object with a ``__code__``."""

    __slots__ = ("__code__",)

    def __init__(self, code: types.CodeType) -> None:
        self.__code__ = code


def protect(module_name: str) -> None:
    """Mark every function of module ``module_name`` protected, nested ones (closures) included.

    A module calls it last: ``protect(__name__)``.
    """
    namespace = vars(sys.modules[module_name])
    seen: set[types.CodeType] = set()
    for function in _functions(namespace.values(), module_name):
        if function.__globals__ is namespace:  # defined here: not imported, nor contextlib's wrapper of one
            _mark(function.__code__, seen)


def protect_library() -> None:
    """:func:`protect` every module of trio_tasks imported so far but the demo's (``trio_tasks/__init__``
    calls it last; :mod:`trio_tasks.testing`, imported later, protects itself)."""
    for name in [name for name in sys.modules if name.startswith("trio_tasks._")]:
        if not name.startswith("trio_tasks._demo"):
            protect(name)


def unprotect(code: types.CodeType) -> None:
    """Mark a task body's code unprotected: a Ctrl-C interrupts the body where it is."""
    trio.lowlevel.disable_ki_protection(_Code(code))


def unprotect_body(body: object) -> None:
    """:func:`unprotect` the code of a body (a coroutine or async generator) whose function's own code
    was not it."""
    code = getattr(body, "ag_code", None) or getattr(body, "cr_code", None)
    if isinstance(code, types.CodeType):
        unprotect(code)


def body_code(func: Any) -> types.CodeType | None:
    """The code that runs as the body when ``func`` is called, if it is ``func``'s own (through partials
    and bound methods); None when the call returns a coroutine or generator of some other code."""
    while isinstance(func, functools.partial):
        func = func.func
    code = getattr(getattr(func, "__func__", func), "__code__", None)
    if isinstance(code, types.CodeType) and code.co_flags & (inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR):
        return code
    return None


def _functions(objects: Any, module_name: str) -> Iterator[types.FunctionType]:
    for obj in objects:
        if isinstance(obj, type):
            if obj.__module__ == module_name:
                yield from _functions(vars(obj).values(), module_name)
            continue
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        elif isinstance(obj, property):
            yield from _functions((obj.fget, obj.fset, obj.fdel), module_name)
            continue
        while isinstance(obj, types.FunctionType):
            yield obj
            obj = getattr(obj, "__wrapped__", None)  # (asynccontextmanager's wrapper, from contextlib)


def _mark(code: types.CodeType, seen: set[types.CodeType]) -> None:
    if code in seen:
        return
    seen.add(code)
    trio.lowlevel.enable_ki_protection(_Code(code))
    for const in code.co_consts:  # the functions, lambdas and comprehensions defined inside it
        if isinstance(const, types.CodeType):
            _mark(const, seen)
