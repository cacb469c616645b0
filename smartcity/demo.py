"""The demo city: the organisations `smartcity init` and `smartcity up` register in a new chain.

The chain takes its organisations as a parameter (`chain.home.init_suite(organisations=...)`);
these are the suite's: the committee (city agency, road authority, regulator), two banks, an
SME and the operator whose key the services relay with.
"""

from __future__ import annotations

from functools import partial

from chain import home
from chain.home import Organisation

DEMO_ORGS: tuple[Organisation, ...] = (
    Organisation("city-agency", "City Civil Affairs Bureau", ("agency", "committee")),
    Organisation("road-authority", "City Road Authority", ("road_authority", "committee")),
    Organisation("regulator", "City Financial Regulator", ("regulator", "committee")),
    Organisation("bank-a", "First City Bank", ("bank",)),
    Organisation("bank-b", "Harbour Commercial Bank", ("bank",)),
    Organisation("sme-demo", "Demo Precision Parts Co.", ("sme",)),
    Organisation("bsn-operator", "City BSN Operator", ("operator",)),
)
# The organisation whose key the services sign relayed transactions with
OPERATOR_ORG = "bsn-operator"

# `chain.home.init_suite` with the demo organisations: a new suite folder as `smartcity init` makes
init_suite = partial(home.init_suite, organisations=DEMO_ORGS)

__all__ = ["DEMO_ORGS", "OPERATOR_ORG", "init_suite"]
