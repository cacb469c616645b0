"""services/identity."""
