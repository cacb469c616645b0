"""python -m iot_gateway simulate ... (a gateway process is `smartcity gateway run`)."""

from iot_gateway.cli import main

main()
