"""Contracts: the framework and the system contracts every chain runs."""

from chain.contracts.framework import Context, Contract, ContractRegistry, method

__all__ = ["Context", "Contract", "ContractRegistry", "method"]
