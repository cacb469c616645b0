"""Which service errors a route's code can raise, read from its source (for the OpenAPI tests).

Starting from the route's endpoint and dependencies, it follows the calls it can resolve without
running anything: names (globals and closures), attributes of modules and classes, and methods
of typed parameters (`env: Runtime` -> `env.chain` is the `IdentityChain` that `Runtime`
annotates -> its `submit`), staying inside this project's packages. It collects every
`raise E(...)` of an exception class, and the errors a `ServiceChain` turns contract refusals
into (its `refusals`, else ChainRefused). Calls it cannot resolve (methods of locals, of library
objects) are not followed, so it can miss an error raised only behind one: it finds what is
certainly possible, which is what a declared status is checked against.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi.routing import APIRoute

from services.common.chain import ServiceChain
from services.common.errors import ChainRefused

PACKAGES = ("services.", "chain.")


@dataclass(frozen=True)
class Instance:
    """A value known only by its type (a typed parameter, an annotated attribute)."""

    cls: type


@dataclass
class Walk:
    raised: set[type[BaseException]] = field(default_factory=set)
    seen: set[Any] = field(default_factory=set)


def raisable(route: APIRoute) -> set[type[BaseException]]:
    """The exception classes the route's endpoint and dependencies can raise."""
    walk = Walk()
    for call in _calls_of(route):
        _walk(call, None, walk, root=True)
    return walk.raised


def _calls_of(route: APIRoute) -> Iterator[Callable[..., Any]]:
    stack = [route.dependant]
    while stack:
        current = stack.pop()
        if current.call is not None:
            yield current.call
        stack.extend(current.dependencies)


def _ours(fn: Any) -> bool:
    return isinstance(fn, types.FunctionType) and fn.__module__.startswith(PACKAGES)


def _walk(fn: Any, owner: type | None, walk: Walk, *, root: bool = False) -> None:
    """Collect what `fn` raises and follow its calls (a route's own functions wherever they
    live; below them, this project's code only)."""
    fn = inspect.unwrap(fn)
    if not isinstance(fn, types.FunctionType) or (fn, owner) in walk.seen:
        return
    if not root and not _ours(fn):
        return
    walk.seen.add((fn, owner))
    if owner is not None and issubclass(owner, ServiceChain) and fn.__name__ == "refusal":
        walk.raised |= {ChainRefused, *owner.refusals.values()}
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return
    scope = _scope(fn, owner)
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            found = _resolve(target, scope)
            if isinstance(found, type) and issubclass(found, BaseException):
                walk.raised.add(found)
        elif isinstance(node, ast.Call):
            _follow(_resolve(node.func, scope), walk)


def _follow(found: Any, walk: Walk) -> None:
    if isinstance(found, tuple):  # a method of a known class
        method, cls = found
        _walk(method, cls, walk)
    elif isinstance(found, types.FunctionType):
        _walk(found, None, walk)


def _scope(fn: types.FunctionType, owner: type | None) -> dict[str, Any]:
    scope: dict[str, Any] = dict(fn.__globals__)
    try:
        closure = inspect.getclosurevars(fn)
        scope.update(closure.nonlocals)
    except (TypeError, ValueError):
        pass
    for name, hint in _hints(fn).items():
        if isinstance(hint, type) and name != "return":
            scope[name] = Instance(hint)
    if owner is not None:
        scope["self"] = Instance(owner)
        scope["cls"] = owner
    return scope


def _hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj)
    except Exception:  # an annotation naming what only exists while type checking
        return {}


def _resolve(expr: ast.expr, scope: dict[str, Any]) -> Any:
    if isinstance(expr, ast.Name):
        return scope.get(expr.id)
    if not isinstance(expr, ast.Attribute):
        return None
    base = _resolve(expr.value, scope)
    if isinstance(base, tuple):
        return None
    if isinstance(base, types.ModuleType):
        return getattr(base, expr.attr, None)
    if isinstance(base, type):
        return getattr(base, expr.attr, None)
    if isinstance(base, Instance):
        return _member(base.cls, expr.attr)
    return None


def _member(cls: type, name: str) -> Any:
    """A method (with the class it is called on), or an annotated attribute's type."""
    try:
        static = inspect.getattr_static(cls, name)
    except AttributeError:
        hint = _hints(cls).get(name)
        return Instance(hint) if isinstance(hint, type) else None
    if isinstance(static, property) and static.fget is not None:
        returned = _hints(static.fget).get("return")
        return Instance(returned) if isinstance(returned, type) else None
    if isinstance(static, staticmethod | classmethod):
        return static.__func__
    if isinstance(static, types.FunctionType):
        return (static, cls)
    hint = _hints(cls).get(name)
    return Instance(hint) if isinstance(hint, type) else None
