"""services/common."""
