"""The hashes of one chain, bound once from its genesis's suite.

    trees = trees_for(genesis.suite)
    trees.hasher(data).digest()             # SHA-256 or SM3, hashlib-style
    trees.Tree, trees.Leaf, trees.compute_root   # the sparse Merkle tree under that hash
    trees.verify(public_hex, message, signature) # the suite's signature check

The default suite gets chain.smt itself. The sm2-sm3 suite gets a second instance of the same
module (its source executed again under another name) whose one hash, `_sha256`, is SM3: the
tree's hot code is shared, not copied, and carries no per-call choice of hash. Each instance is
made once and never changed afterwards.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from chain import smt
from chain.suites.base import CryptoSuite, Hasher, SuiteName, Verifier

_lock = threading.Lock()
_made: dict[SuiteName, ChainTrees] = {}


@dataclass(frozen=True)
class ChainTrees:
    """A suite's hash, the sparse Merkle tree built with it, and its signature check."""

    suite: SuiteName
    hasher: Hasher
    module: ModuleType
    verify: Verifier

    @property
    def Tree(self) -> Any:
        return self.module.Tree

    @property
    def Leaf(self) -> Any:
        return self.module.Leaf

    @property
    def StateProof(self) -> Any:
        return self.module.StateProof

    def compute_root(self, key_hash: bytes, proof: Any) -> bytes:
        root: bytes = self.module.compute_root(key_hash, proof)
        return root


def trees_for(suite: CryptoSuite) -> ChainTrees:
    """The suite's trees, made once per suite name."""
    with _lock:
        trees = _made.get(suite.name)
        if trees is None:
            module = smt if suite.name == "ed25519-sha256" else _smt_instance(suite)
            trees = ChainTrees(suite.name, suite.hasher, module, suite.verify)
            _made[suite.name] = trees
        return trees


def _smt_instance(suite: CryptoSuite) -> ModuleType:
    name = f"chain.smt_{suite.name.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(name, smt.__file__)
    if spec is None or spec.loader is None:  # pragma: no cover - chain.smt is a source file
        raise ImportError(f"cannot load {smt.__file__} again")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve the module's annotations through it
    spec.loader.exec_module(module)
    module.__dict__["_sha256"] = suite.hasher
    check_tree(module, suite.hasher)
    return module


def check_tree(module: ModuleType, hasher: Hasher) -> None:
    """Refuse an instance that hashes with anything but `hasher` (say chain.smt one day
    computed a constant with SHA-256 at import): a two-leaf root recomputed by hand."""
    left, right, value = bytes(32), b"\x80" + bytes(31), b"\x01" * 32
    leaves = [hasher(b"\x00" + key + value).digest() for key in (left, right)]
    expected = hasher(b"\x01" + leaves[0] + leaves[1]).digest()
    if module.Tree.from_entries([(left, value), (right, value)]).root_hash != expected:
        raise ImportError(f"{module.__name__} does not hash with its suite's hash only")
