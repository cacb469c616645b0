"""Chain-independent road-health analytics: profiles, quarter-car, IRI, roughness, anomalies."""
