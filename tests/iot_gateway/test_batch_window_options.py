"""The anchoring window's settings: a batch of no message or a negative wait is refused with a
reason (`--batch-max 0` used to loop for ever numbering the first message into batches)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from chain.crypto import SigningKey
from iot_gateway.forwarder import ForwardSettings
from iot_gateway.outbox_sql import number_into
from smartcity.cli import main


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--batch-max", "0"),
        ("--batch-max", "-5"),
        ("--batch-max", "many"),
        ("--batch-wait", "-1"),
        ("--batch-wait", "nan"),
        ("--batch-wait", "inf"),
    ],
)
def test_a_wrong_anchoring_window_is_refused_at_the_command_line(option: str, value: str) -> None:
    outcome = CliRunner().invoke(
        main, ["gateway", "run", "--data", "x", "--roadhealth", "y", option, value]
    )
    assert outcome.exit_code == 2
    assert f"Invalid value for '{option}'" in outcome.output


def test_numbering_into_batches_of_no_message_is_refused_not_looped() -> None:
    with pytest.raises(ValueError, match="at least 1 message, not 0"):
        number_into(3, None, 0, iter(range(100)).__next__)
    assert number_into(3, None, 2, iter(range(100)).__next__) == (
        [(0, range(0, 2)), (1, range(0, 1))],
        (1, 1),
    )


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"batch_max": 0}, "batch_max must be at least 1, got 0"),
        ({"batch_wait_s": -0.5}, "batch_wait_s must be 0 or more seconds, got -0.5"),
        ({"batch_wait_s": float("nan")}, "batch_wait_s must be 0 or more seconds, got nan"),
    ],
)
def test_a_gateway_configured_in_code_refuses_a_wrong_window(
    settings: dict[str, float], reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        ForwardSettings(
            roadhealth_url="http://127.0.0.1:1/roadhealth",
            operator_org="bsn-operator",
            operator_key=SigningKey.generate(),
            **settings,  # type: ignore[arg-type]
        )
