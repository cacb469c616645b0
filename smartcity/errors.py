"""The smartcity package's errors, under one root.

SmartcityError      every error the suite's own code raises on purpose (a chain.errors.ChainError
│                   too, so the CLI reports it as it reports the chain's)
├── ConfigError     the configuration is invalid (smartcity.settings)
└── BackupError     a backup cannot be made, verified or restored (smartcity.backup)
"""

from __future__ import annotations

from chain.errors import ChainError


class SmartcityError(ChainError):
    """Root of every error the smartcity package raises on purpose."""
