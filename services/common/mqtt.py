"""The MQTT broker a service publishes to, as the deployment names it in the environment.

The chain fills passwords into URLs (`chain.secretfile`) but knows nothing of MQTT; the URL and
its password file are the services' settings (road health publishes its alerts there).
"""

from __future__ import annotations

import os

from chain.secretfile import fill_password

URL_VARIABLE = "SMARTCITY_MQTT_URL"
SECRET_FILE_VARIABLE = "SMARTCITY_MQTT_PASSWORD_FILE"  # noqa: S105 (a variable name)


def mqtt_url_from_env() -> str | None:
    """SMARTCITY_MQTT_URL, with `{password}` filled from SMARTCITY_MQTT_PASSWORD_FILE."""
    url = os.environ.get(URL_VARIABLE)
    if not url:
        return None
    return fill_password(url, url_name=URL_VARIABLE, file_variable=SECRET_FILE_VARIABLE)
