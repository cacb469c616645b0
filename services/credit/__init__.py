"""services/credit."""
