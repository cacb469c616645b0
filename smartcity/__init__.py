"""The smartcity suite: the CLI and the one-process composition of chain and services."""
