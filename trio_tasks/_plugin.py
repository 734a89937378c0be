"""Plugins: named owners of task types and of cleanup hooks."""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeVar, final, overload

import attrs

from ._checks import check_str, safe_repr, shown
from ._errors import UnknownTaskType
from ._ki import body_code, unprotect
from ._retry import RetryPolicy

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import ExceptionGroup

__all__ = ["Plugin"]

logger = logging.getLogger("trio_tasks")

F = TypeVar("F", bound=Callable[..., Any])
CleanupHook = Callable[[], Awaitable[object]]

OnLimit = Literal["queue", "reject"]

# Parameters that ``start`` fills from its own arguments when the caller
# did not pass them (the seed's examples rely on this).
_FILLABLE = ("task_id", "chat_key")


@final
@attrs.frozen(eq=False)
class TaskSpec:
    """How to run one mounted task type (internal).

    ``fills`` lists the body's parameters that ``start`` may fill, each with
    the number of positional arguments after the handle that would already
    cover it (``None`` for keyword-only parameters). ``plain`` is True when
    the type has none of these options (no fills, no limit, no retry), so
    that ``start`` may skip them.
    """

    task_type: str
    func: Callable[..., Any]
    is_generator: bool
    fills: tuple[tuple[str, int | None], ...]
    max_concurrent: int | None = None
    on_limit: OnLimit = "queue"
    retry: RetryPolicy | None = None
    unprotect_each: bool = False  # the body's code is not the function's own: unprotect each body at start
    plain: bool = attrs.field(init=False)

    @plain.default
    def _no_options(self) -> bool:
        return not self.fills and self.max_concurrent is None and self.retry is None and not self.unprotect_each


def check_limit(max_concurrent: object, on_limit: object) -> None:
    """Check a ``max_concurrent`` / ``on_limit`` pair (internal; the manager's too)."""
    if max_concurrent is not None and (isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int)):
        raise TypeError(f"max_concurrent must be None or an int >= 1, got {safe_repr(max_concurrent)}")
    if max_concurrent is not None and max_concurrent < 1:
        raise ValueError(f"max_concurrent must be >= 1 (or None for no limit), got {shown(max_concurrent)}")
    if on_limit != "queue" and on_limit != "reject":
        error = ValueError if isinstance(on_limit, str) else TypeError
        raise error(
            f"on_limit must be 'queue' (the task waits for a free slot) or 'reject' (start raises TooManyTasks), "
            f"got {safe_repr(on_limit)}"
        )


def _callable_without_arguments(func: Callable[..., Any]) -> bool:
    try:
        inspect.signature(func).bind()
    except TypeError:
        return False
    except ValueError:  # no signature to read: let it be
        return True
    return True


def _fillable_parameters(func: Callable[..., Any]) -> tuple[tuple[str, int | None], ...]:
    """Check that ``func`` takes the handle first; find its fillable parameters."""
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # no signature to read: fill nothing
        return ()
    takes_handle = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    )
    if not params or params[0].kind not in takes_handle:
        name = getattr(func, "__qualname__", None) or safe_repr(func)  # (a functools.partial has no name)
        raise TypeError(
            f"task function {name} must take the AsyncTaskHandle as its "
            f"first positional parameter, e.g. `async def my_task(handle, ...)`"
        )
    fills: list[tuple[str, int | None]] = []
    for position, param in enumerate(params):
        if param.name not in _FILLABLE or position == 0:
            continue
        if param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
            fills.append((param.name, position))
        elif param.kind is inspect.Parameter.KEYWORD_ONLY:
            fills.append((param.name, None))
    return tuple(fills)


@final
@attrs.define(eq=False)
class Plugin:
    """A named set of task types and cleanup hooks, as in the seed's ``NekroPlugin``.

    Mount task bodies with :meth:`mount_async_task`, register cleanup with
    :meth:`on_disabled`, and run the cleanup with :meth:`disable`::

        plugin = Plugin(name="Video", module_name="video")

        @plugin.mount_async_task("render")
        async def render(handle, scene: str):
            yield TaskCtl.report_progress(f"Rendering {scene}...", 10)
            yield TaskCtl.success("Rendered", data={"file": f"{scene}.mp4"})

        @plugin.on_disabled()
        async def cleanup():
            await task.stop_all(plugin=plugin)  # this plugin's tasks only
    """

    name: str
    module_name: str
    description: str = ""
    version: str = ""
    author: str = ""
    url: str = ""
    _specs: dict[str, TaskSpec] = attrs.field(factory=dict, init=False, repr=False)
    _cleanup: list[CleanupHook] = attrs.field(factory=list, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        check_str("Plugin name", self.name, empty_ok=False)
        check_str("Plugin module_name", self.module_name, empty_ok=False)
        for field in ("description", "version", "author", "url"):
            value = getattr(self, field)
            if not isinstance(value, str):
                raise TypeError(f"Plugin {field} must be a str, got {safe_repr(value)}")

    @property
    def task_types(self) -> list[str]:
        """The task types mounted on this plugin, in mounting order.

        >>> plugin = Plugin(name="Video", module_name="video")
        >>> @plugin.mount_async_task("render")
        ... async def render(handle): ...
        >>> plugin.task_types
        ['render']
        """
        return list(self._specs)

    def mount_async_task(
        self,
        task_type: str,
        *,
        max_concurrent: int | None = None,
        on_limit: OnLimit = "queue",
        retry: RetryPolicy | None = None,
    ) -> Callable[[F], F]:
        """Register the decorated function as the body of ``task_type``.

        The function is an async generator that yields :class:`TaskCtl`
        values, or a plain ``async def`` whose return counts as success. It
        takes the :class:`AsyncTaskHandle` first; parameters named
        ``task_id`` or ``chat_key`` that ``start`` was not given are filled
        from ``start``'s own arguments (by keyword: not a positional-only
        one). The function is returned unchanged::

            @plugin.mount_async_task("my_task")
            async def my_task(handle, prompt: str, task_id: str):
                yield TaskCtl.success(f"{task_id} done")

        Args:
            max_concurrent: at most this many tasks of this type run at once
                in one task manager (``None``: no limit).
            on_limit: when the limit is reached, ``"queue"`` accepts the start
                at once and runs the body when a slot frees (first come, first
                served; a queued task counts as running and can be
                cancelled), ``"reject"`` makes ``start`` raise
                :class:`~trio_tasks.TooManyTasks`.
            retry: run the body again when it raises (see
                :class:`~trio_tasks.RetryPolicy`).

        Raises:
            TypeError: ``task_type`` is not a non-empty str, or the function
                is neither an async generator function nor a coroutine
                function, or an option has the wrong type.
            ValueError: ``task_type`` contains ``":"`` or is already mounted
                on this plugin, or an option is out of range.
        """
        check_str("task_type", task_type, empty_ok=False)
        check_limit(max_concurrent, on_limit)
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError(f"retry must be None or a trio_tasks.RetryPolicy, got {safe_repr(retry)}")
        if ":" in task_type:
            raise ValueError(
                f"task_type {task_type!r} must not contain ':' "
                f"(running tasks are listed as 'task_type:task_id')"
            )

        def decorate(func: F) -> F:
            if inspect.isasyncgenfunction(func):
                is_generator = True
            elif inspect.iscoroutinefunction(func):
                is_generator = False
            else:
                raise TypeError(
                    f"mount_async_task({task_type!r}) needs an async generator function "
                    f"(yielding TaskCtl) or an `async def` function, got {safe_repr(func)}"
                )
            if task_type in self._specs:
                raise ValueError(
                    f"task type {task_type!r} is already mounted on plugin {self.name!r}; "
                    f"choose another name or another plugin"
                )
            fills = _fillable_parameters(func)
            code = body_code(func)
            if code is not None:  # (a Ctrl-C interrupts the body where it is; see _ki)
                unprotect(code)
            self._specs[task_type] = TaskSpec(
                task_type, func, is_generator, fills, max_concurrent, on_limit, retry, unprotect_each=code is None
            )
            return func

        return decorate

    def _spec(self, task_type: str) -> TaskSpec:
        """The mounted spec of ``task_type`` (internal); raises UnknownTaskType."""
        try:
            return self._specs[task_type]
        except (KeyError, TypeError):
            known = ", ".join(map(repr, self._specs)) or "none"
            raise UnknownTaskType(
                f"plugin {self.name!r} has no task type {task_type!r} (mounted: {known}); "
                f"mount it with @plugin.mount_async_task({task_type!r})"
            ) from None

    @overload
    def on_disabled(self, func: None = None) -> Callable[[F], F]: ...

    @overload
    def on_disabled(self, func: F) -> F: ...

    def on_disabled(self, func: F | None = None) -> Callable[[F], F] | F:
        """Register the decorated ``async def`` as a cleanup hook for :meth:`disable`.

        Hooks run in registration order; the function is returned unchanged.
        ``@plugin.on_disabled()`` and ``@plugin.on_disabled`` both work. A hook
        that stops tasks should stop only its own plugin's::

            @plugin.on_disabled()
            async def cleanup():
                count = await task.stop_all(plugin=plugin)

        Raises:
            TypeError: the function is not an ``async def`` that can be called
                without arguments.
        """

        def decorate(func: F) -> F:
            if not inspect.iscoroutinefunction(func) or not _callable_without_arguments(func):
                raise TypeError(
                    f"on_disabled() needs an `async def` function taking no arguments, got {safe_repr(func)}"
                )
            self._cleanup.append(func)
            return func

        return decorate if func is None else decorate(func)

    async def disable(self) -> None:
        """Run every ``on_disabled`` hook, in the order they were registered.

        A hook that raises does not stop the others: each failure is logged on
        the ``trio_tasks`` logger, and once all hooks have run the failures are
        raised together as an :class:`ExceptionGroup`. The agent framework calls
        it when it unloads the plugin::

            await plugin.disable()
        """
        failures: list[Exception] = []
        for hook in self._cleanup:
            try:
                await hook()
            except Exception as exc:
                logger.exception("on_disabled hook %r of plugin %r failed", hook, self.name)
                failures.append(exc)
        if failures:
            raise ExceptionGroup(f"{len(failures)} on_disabled hook(s) of plugin {self.name!r} failed", failures)
