"""iot_gateway."""
