"""The contract framework: typed methods, a deterministic execution context, a registry.

A contract is a class with a `name` (its state namespace) and methods marked with `@method`,
each taking a Pydantic model of its arguments. Execution is a pure function of the context,
the state and the arguments: no clock, randomness, network or database.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from chain.block import Event
from chain.errors import ContractError, GenesisError, TxRejected
from chain.state import StateView

if TYPE_CHECKING:
    from chain.tx import Tx


class Args(BaseModel):
    """Base of every method's arguments: strict types, no unknown fields, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


@dataclass
class Context:
    """What a contract may know about the transaction it executes."""

    sender: str
    sender_org: str
    sender_roles: frozenset[str]
    height: int
    time_ms: int
    tx_hash: str
    contract: str
    events: list[Event] = field(default_factory=list)

    def emit(self, name: str, **data: Any) -> None:
        self.events.append(Event(self.contract, name, data))

    def require_role(self, *roles: str) -> None:
        """Fail unless the sender's organisation holds one of `roles`."""
        if not self.sender_roles.intersection(roles):
            raise ContractError(
                "forbidden",
                f"needs role {' or '.join(roles)}; sender's org {self.sender_org} lacks it",
            )


A = TypeVar("A", bound=Args)
Handler = Callable[[Any, Context, StateView, Any], None]


@dataclass(frozen=True)
class Method:
    name: str
    args: type[Args]
    handler: Handler


def method(args: type[A]) -> Callable[[Callable[[Any, Context, StateView, A], None]], Handler]:
    """Mark a contract method and the model of its arguments."""

    def mark(fn: Callable[[Any, Context, StateView, A], None]) -> Handler:
        fn.__contract_args__ = args  # type: ignore[attr-defined]
        return fn

    return mark


class Contract:
    """Base of contracts: collects `@method`s and dispatches to them."""

    name: ClassVar[str]
    system: ClassVar[bool] = False
    methods: ClassVar[dict[str, Method]]
    # Modules besides the class's own whose source is part of the contract (its argument
    # models, state keys, checks), in order: the code hash covers them too (`code_hash`)
    code_modules: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.methods = {
            attr: Method(attr, fn.__contract_args__, fn)
            for attr, fn in inspect.getmembers(cls, inspect.isfunction)
            if hasattr(fn, "__contract_args__")
        }

    def parse_args(self, method_name: str, args: dict[str, Any]) -> Args:
        """Validated arguments, or the door's rejection naming what is wrong."""
        spec = self.methods.get(method_name)
        if spec is None:
            raise TxRejected(
                "unknown_method",
                f"contract {self.name} has no method {method_name}; it has {sorted(self.methods)}",
            )
        try:
            return spec.args.model_validate(args)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}" for e in exc.errors()
            )
            raise TxRejected("bad_args", f"{self.name}.{method_name}: {problems}") from exc

    def parse_tx_args(self, tx: Tx, *, keep: bool = True) -> Args:
        """`tx`'s arguments parsed. The door parses them to refuse bad ones and keeps the parse
        on the transaction (`keep`); the first execution of the transaction takes it
        (`keep=False`) instead of parsing again. A parse depends only on the method's model and
        the arguments (which the transaction's hash binds); another model (another version of
        the contract) parses again. Taken once, never reused: Args are frozen but a list or dict
        inside them is not, and a handler that changed one would hand a later execution of the
        same transaction (a round that did not commit) other arguments than a fresh parse."""
        spec = self.methods.get(tx.method)
        kept = tx.__dict__.pop("_parsed_args", None)
        if kept is not None and kept[0] is spec:  # no handler has had it yet
            parsed: Args = kept[1]
        else:
            parsed = self.parse_args(tx.method, tx.args)
        if keep:
            tx.__dict__["_parsed_args"] = (spec, parsed)
        return parsed

    def execute(
        self, ctx: Context, state: StateView, method_name: str, args: dict[str, Any]
    ) -> None:
        self._run(ctx, state, method_name, lambda: self.parse_args(method_name, args))

    def execute_tx(self, ctx: Context, state: StateView, tx: Tx) -> None:
        """Execute a transaction, taking the parse of its arguments made at the door."""
        self._run(ctx, state, tx.method, lambda: self.parse_tx_args(tx, keep=False))

    def _run(
        self, ctx: Context, state: StateView, method_name: str, parse: Callable[[], Args]
    ) -> None:
        try:
            parsed = parse()
        except TxRejected as exc:
            raise ContractError(exc.code, exc.message) from exc
        self.methods[method_name].handler(self, ctx, state, parsed)


def code_hash(cls: type[Contract]) -> str:
    """SHA-256 of the source of the module that defines a contract class; with `code_modules`,
    of that source followed, for each of them in order, by a NUL, its name, a NUL and its
    source (a contract in one module hashes as it always did)."""
    module = inspect.getmodule(cls)
    if module is None:
        raise GenesisError(f"cannot find the module of {cls!r}")
    digest = hashlib.sha256(inspect.getsource(module).encode())
    for name in cls.code_modules:
        source = inspect.getsource(importlib.import_module(name))
        digest.update(b"\0" + name.encode() + b"\0" + source.encode())
    return digest.hexdigest()


def load_contract(path: str) -> type[Contract]:
    """Import `package.module:Class` and check it is a contract."""
    module_name, _, attr = path.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise GenesisError(f"contract {path} is not installed: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Contract)):
        raise GenesisError(f"{path} is not a Contract class")
    return cls


class ContractRegistry:
    """The contracts a node can execute, keyed by name."""

    def __init__(self) -> None:
        self._contracts: dict[str, Contract] = {}

    def add(self, contract: Contract) -> None:
        self._contracts[contract.name] = contract

    def install(self, name: str, path: str, expected_hash: str) -> None:
        """Load an application contract, refusing code other than what the chain registered."""
        cls = load_contract(path)
        actual = code_hash(cls)
        if actual != expected_hash:
            raise GenesisError(
                f"contract {name} ({path}) has code hash {actual},"
                f" the chain registered {expected_hash}:"
                " install the matching version"
            )
        if cls.name != name:
            raise GenesisError(f"contract class {path} is named {cls.name}, registered as {name}")
        self.add(cls())

    def get(self, name: str) -> Contract:
        contract = self._contracts.get(name)
        if contract is None:
            raise TxRejected(
                "unknown_contract", f"no contract named {name}; known: {sorted(self._contracts)}"
            )
        return contract

    def __contains__(self, name: str) -> bool:
        return name in self._contracts

    def names(self) -> list[str]:
        return sorted(self._contracts)
