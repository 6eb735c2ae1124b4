"""Control-socket methods as data: each package declares its own, the wiring joins them.

A ``Method[T]`` is a name, the role it needs, a summary and a handler taking its target (the
component it belongs to, of type ``T``) and the request's params; it may be a coroutine or an
async iterator (a stream). ``Method.bind(target)`` makes the ``BoundMethod`` the server calls;
``method_table`` joins a package's bound methods into the socket's one table
(agent/wiring.py). A refusal (agent/refusal.py) raised by a handler is answered by the
server in one place; raise ``MethodError`` for a malformed request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from agent.control.permissions import Role

Params = dict[str, Any]
T = TypeVar("T")


class MethodError(Exception):
    """An error reported to the caller as a JSON-RPC error with this code and message."""

    def __init__(self, message: str, code: int = -32000, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


@dataclass(frozen=True)
class BoundMethod:
    """A method ready to serve: ``call(params)`` runs its handler on its target."""

    name: str
    role: Role
    summary: str
    call: Callable[[Params], Any | Awaitable[Any]]


@dataclass(frozen=True)
class Method(Generic[T]):
    name: str
    role: Role
    summary: str
    handler: Callable[[T, Params], Any]

    def bind(self, target: T) -> BoundMethod:
        handler = self.handler
        return BoundMethod(self.name, self.role, self.summary, lambda params: handler(target, params))


def bind_all(methods: Iterable[Method[T]], target: T) -> list[BoundMethod]:
    return [method.bind(target) for method in methods]


def _listing(table: Mapping[str, BoundMethod], params: Params) -> list[dict[str, str]]:
    return [{"name": m.name, "role": m.role.name.lower(), "summary": m.summary} for m in table.values()]


LISTING: Method[Mapping[str, BoundMethod]] = Method(
    "methods", Role.READ, "List the methods and the role each needs.", _listing
)


def method_table(methods: Iterable[BoundMethod]) -> dict[str, BoundMethod]:
    """The socket's table: every method once (a second one with the same name is a bug), and
    ``methods``, which lists them."""
    table: dict[str, BoundMethod] = {}
    for method in methods:
        if method.name in table or method.name == LISTING.name:
            raise ValueError(f"control method {method.name!r} is declared twice")
        table[method.name] = method
    table[LISTING.name] = LISTING.bind(table)
    return table


def str_param(params: Params, name: str, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None and required:
        raise MethodError(f"parameter '{name}' is required", -32602)
    if value is not None and not isinstance(value, str):
        raise MethodError(f"parameter '{name}' must be a string", -32602)
    return value


def required_str(params: Params, name: str) -> str:
    value = str_param(params, name, required=True)
    assert value is not None
    return value
