"""python -m iot_gateway {simulate,gateway} ..."""

from iot_gateway.cli import main

main()
