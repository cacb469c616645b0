"""services/roadhealth."""
