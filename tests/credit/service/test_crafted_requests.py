"""Crafted requests to the credit API get a 4xx naming what is wrong, never a 500, and write
nothing.

A committee member's governance proposal is the signer's own JSON: its `params`, and their
`args`, may be of any type. Read as objects, anything else answered 500 (AttributeError); now
it is refused as a proposal that is not about the model. Hypothesis draws the values. A bearer
token holding a lone surrogate escape is refused as the node refuses it (chain.auth).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chain.tx import sign_tx
from tests._crafted import text, tokens_holding_lone

SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)
not_objects = json_values.filter(lambda v: not isinstance(v, dict))


@st.composite
def proposal_params(draw: Any, sha: str) -> Any:
    """`params` of an invoke proposal that is not an object, or whose `args` are not one."""
    if draw(st.booleans()):
        return draw(not_objects)
    method = draw(st.sampled_from(["approve_model", "retire_model"]))
    return {"contract": "credit", "method": method, "args": draw(not_objects | st.just(sha))}


def test_a_proposal_whose_params_are_not_objects_is_refused_and_not_submitted(
    credit_env: Any,
) -> None:
    env, sha = credit_env, credit_env.model_sha
    key = env.key("city-agency")

    @SETTINGS
    @given(params=proposal_params(sha))
    def check(params: Any) -> None:
        tx = sign_tx(
            key,
            chain_id=env.genesis.chain_id,
            contract="governance",
            method="propose",
            args={"action": "invoke", "params": params},
            expiry_height=env.expiry(),
        )
        answer = env.post(f"/models/{sha}/governance", "city-agency", json=env.signed(tx))
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["code"] == "wrong_proposal" and sha in error["message"]
        assert tx.hash not in env.suite.node.mempool and env.ledger.tx_proof(tx.hash) is None

    check()


def test_a_token_holding_a_lone_surrogate_is_refused_with_its_reason(credit_env: Any) -> None:
    env = credit_env

    @SETTINGS
    @given(token=tokens_holding_lone(env.key("bank-a").public_hex))
    def check(token: str) -> None:
        answer = env.client.get("/credit/smes", headers={"authorization": f"Bearer {token}"})
        assert answer.status_code == 401, answer.text
        error = answer.json()["error"]
        assert error["code"] == "unauthorized" and "not Unicode text" in error["message"]

    check()
