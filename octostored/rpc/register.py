"""Handlers register through the contract: :func:`method` and :func:`rooted`.

Both refuse a name that :data:`.protocol.SPECS` does not hold (at registration, never per
request).  :func:`rooted` also does what every handler of a method taking ``root`` did itself:
check the params are an object (:class:`.params.Params`) and open the root it names
(``await daemon.root(...)``); the handler gets ``(ls, p, root)``.  Per request that is one extra
coroutine frame: no thread hop, no lookup.

>>> @rooted(ls, daemon, "octostore/sync")                    # doctest: +SKIP
... async def sync(ls, p, root):
...     await root.sync()
...     return {"root": root.path, "clock": root.index.clock}
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .params import Params
from .protocol import SPECS, Method

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from ..hub import Hub
    from ..index.root import Root

F = TypeVar("F", bound=Callable[..., Any])
RootedHandler = Callable[[Any, Params, "Root"], Awaitable[Any]]


def spec(name: str) -> Method:
    """The contract's spec of ``name``; a method not in the contract is a bug, said at once."""
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"{name} is not in the protocol's contract (octostored/rpc/protocol.py"
                         "): add its spec there first") from None


def method(ls: LanguageServer, name: str) -> Callable[[F], F]:
    """Register ``fn(ls, params)`` (params as sent) as the handler of ``name``."""
    spec(name)

    def register(fn: F) -> F:
        ls.feature(name)(fn)
        return fn

    return register


def rooted(ls: LanguageServer, daemon: Hub, name: str) -> Callable[[RootedHandler], RootedHandler]:
    """Register ``fn(ls, p, root)`` as the handler of ``name``, a method taking ``root``: ``p``
    is the checked params, ``root`` the open root they name."""
    if not spec(name).rooted:
        raise ValueError(f"{name} takes no root in the contract; register it with method()")

    def register(fn: RootedHandler) -> RootedHandler:
        async def handler(ls: Any, params: Any) -> Any:
            p = Params(name, params)
            root = await daemon.root(p.str("root", required=True))
            return await fn(ls, p, root)

        handler.__name__ = handler.__qualname__ = fn.__name__
        ls.feature(name)(handler)
        return fn

    return register
