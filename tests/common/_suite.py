"""What the suite-wide tests of tests/common share besides the suite_client fixture."""

# Routes that read a JSON body: the node's raw reads and one write of each service
BODY_ROUTES = [
    ("POST", "/chain/v1/txs"),
    ("POST", "/chain/v1/txs/batch"),
    ("POST", "/identity/types"),
    ("POST", "/credit/smes"),
    ("POST", "/roadhealth/v1/webhooks"),
]
