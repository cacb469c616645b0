"""The CLI as a city clerk uses it: init, token, anchor a file, verify its proof offline."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from chain.auth import verify_token
from chain.home import SuiteHome
from smartcity.cli import main
from smartcity.suite import open_suite


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_init_creates_keys_genesis_and_node_homes(tmp_path: Path) -> None:
    result = run("init", "--out", str(tmp_path / "c"), "--validators", "4", "--observers", "1")
    assert result.exit_code == 0, result.output
    genesis = json.loads((tmp_path / "c" / "genesis.json").read_text())
    assert len(genesis["validators"]) == 4 and len(genesis["observers"]) == 1
    orgs = {o["id"]: o["roles"] for o in genesis["organisations"]}
    assert {"city-agency", "bank-a", "bank-b", "sme-demo", "road-authority", "regulator"} <= set(
        orgs
    )
    for key in (tmp_path / "c").rglob("*.jwk"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "c" / "nodes" / "observer-0" / "node.json").is_file()
    again = run("init", "--out", str(tmp_path / "c"))
    assert again.exit_code == 1 and "already holds a chain" in again.output


def test_bad_arguments_get_clear_errors(tmp_path: Path) -> None:
    result = run("init", "--out", str(tmp_path / "c"), "--validators", "0")
    assert result.exit_code == 2 and "validators" in result.output
    run("init", "--out", str(tmp_path / "c"))
    result = run("token", "--home", str(tmp_path / "c"), "--as", "nobody")
    assert (
        result.exit_code == 1
        and "no key for organisation 'nobody'" in result.output
        and "bank-a" in result.output
    )
    result = run("token", "--home", str(tmp_path / "c"), "--as", "bank-a", "--ttl", "99999")
    assert result.exit_code == 2
    result = run("node", "--home", str(tmp_path))
    assert result.exit_code == 1 and "not a node home" in result.output


def test_token_is_signed_by_the_registered_key(tmp_path: Path) -> None:
    run("init", "--out", str(tmp_path / "c"))
    result = run("token", "--home", str(tmp_path / "c"), "--as", "bank-a", "--audience", "credit")
    genesis = SuiteHome(tmp_path / "c").genesis()
    registered = {k: (o.id, frozenset(o.roles)) for o in genesis.organisations for k in o.keys}
    caller = verify_token(result.output.strip(), audience="credit", resolve=registered.get)
    assert caller.org == "bank-a" and "bank" in caller.roles


@pytest.fixture
def suite(tmp_path: Path, live_server: Callable[[Any], Any]) -> Iterator[tuple[Path, str]]:
    data = tmp_path / "data"
    running = open_suite(data)
    with live_server(running.app) as server:
        yield data, f"{server.url}/chain"


def test_anchor_then_verify_proof_and_every_tampering_fails(
    suite: tuple[Path, str], tmp_path: Path
) -> None:
    data, url = suite
    deed, plan = tmp_path / "deed.pdf", tmp_path / "plan.dwg"
    deed.write_bytes(b"%PDF-1.7 title deed of parcel 42")
    plan.write_bytes(b"site plan")
    result = run(
        "anchor",
        str(deed),
        str(plan),
        "--home",
        str(data),
        "--as",
        "city-agency",
        "--node",
        url,
        "--proof-out",
        str(tmp_path / "proofs"),
    )
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "proofs" / "deed.pdf.proof.json"
    genesis = str(data / "genesis.json")
    verified = run("verify-proof", str(bundle), "--genesis", genesis, "--file", str(deed))
    assert verified.exit_code == 0, verified.output
    chain_id = SuiteHome(data).genesis().chain_id
    said = verified.output.splitlines()
    assert re.fullmatch(
        r"VALID: Record sha256 [0-9a-f]{12}… is number 1 of 2 in the batch 'notarised files'"
        rf" anchored by city-agency in block \d+ of chain {chain_id}, committed \d\d \w{{3}}"
        r" \d{4} [\d:]{8} UTC and signed by \d of \d validators \(validator-0.*\)\.",
        said[0],
    ), said
    digest = hashlib.sha256(deed.read_bytes()).hexdigest()
    assert said[1:] == [f"The file {deed} is that record (sha256 {digest})."]
    # the particulars fold out on request, each on its own line and whole
    detailed = run(
        "verify-proof", str(bundle), "--genesis", genesis, "--file", str(deed), "--details"
    )
    assert detailed.exit_code == 0 and detailed.output.startswith(verified.output)
    rows = detailed.output.splitlines()[len(said) :]
    labels = [row[2:].split("  ")[0] for row in rows]
    assert labels[:2] == ["block", "block hash"] and "batch root" in labels, rows
    assert f"  {'record':<{len(max(labels, key=len)) + 2}}{digest}" in rows, rows
    wrong_file = run("verify-proof", str(bundle), "--genesis", genesis, "--file", str(plan))
    assert wrong_file.exit_code == 1 and "INVALID" in wrong_file.output
    original = bundle.read_text()
    for field in ('"sig": "', '"block_hash": "', '"state_root": "', '"hash": "', '"root": "'):
        at = original.index(field) + len(field)
        tampered = original[:at] + ("0" if original[at] != "0" else "1") + original[at + 1 :]
        bundle.write_text(tampered)
        result = run("verify-proof", str(bundle), "--genesis", genesis)
        assert result.exit_code == 1 and result.output.startswith("error: INVALID"), field
    bundle.write_text("not json")
    assert run("verify-proof", str(bundle), "--genesis", genesis).exit_code == 1


def test_anchoring_the_same_file_twice_reuses_the_first_anchor(
    suite: tuple[Path, str], tmp_path: Path
) -> None:
    data, url = suite
    deed = tmp_path / "deed.txt"
    deed.write_text("parcel 7")
    first = run("anchor", str(deed), "--home", str(data), "--as", "bank-a", "--node", url)
    second = run("anchor", str(deed), "--home", str(data), "--as", "bank-a", "--node", url)
    assert first.exit_code == 0 and second.exit_code == 0
    assert "already anchored" in second.output
    result = run(
        "verify-proof", str(deed) + ".proof.json", "--genesis", str(data / "genesis.json"), "--json"
    )
    assert json.loads(result.output)["facts"]["record"]


def test_anchor_without_a_running_node_says_so(tmp_path: Path) -> None:
    run("init", "--out", str(tmp_path / "c"))
    (tmp_path / "f").write_text("x")
    result = run(
        "anchor",
        str(tmp_path / "f"),
        "--home",
        str(tmp_path / "c"),
        "--as",
        "bank-a",
        "--node",
        "http://127.0.0.1:9",
    )
    assert result.exit_code == 1 and "cannot reach the node" in result.output


def test_road_authority_registers_and_suspends_devices_from_the_cli(
    tmp_path: Path, live_server: Callable[[Any], Any]
) -> None:
    from chain.crypto import SigningKey
    from smartcity.registry import SERVICES

    data = tmp_path / "data"
    roadhealth = [e for e in SERVICES if e.name == "roadhealth"]
    running = open_suite(data, services=roadhealth)
    with live_server(running.app) as server:
        url = f"{server.url}/chain"
        key = SigningKey.generate().public_hex
        done = run(
            "device",
            "register",
            "bus-17",
            "--pub-key",
            key,
            "--class",
            "bus",
            "--home",
            str(data),
            "--node",
            url,
        )
        assert done.exit_code == 0 and "register_device bus-17: committed" in done.output
        assert running.node.ledger.read("roadhealth", "device:bus-17")["status"] == "active"
        suspended = run(
            "device", "suspend", "bus-17", "--reason", "stolen", "--home", str(data), "--node", url
        )
        assert suspended.exit_code == 0
        assert running.node.ledger.read("roadhealth", "device:bus-17")["status"] == "suspended"
        # a bank may not register devices, and the chain says so
        refused = run(
            "device",
            "register",
            "bus-18",
            "--pub-key",
            key,
            "--as",
            "bank-a",
            "--home",
            str(data),
            "--node",
            url,
        )
        assert refused.exit_code == 1 and "refused by the chain" in refused.output
        bad = run(
            "device",
            "register",
            "bus-19",
            "--pub-key",
            "nothex",
            "--home",
            str(data),
            "--node",
            url,
        )
        assert bad.exit_code == 1 and "bad_args" in bad.output


def test_token_refuses_an_audience_no_service_has(tmp_path: Path) -> None:
    run("init", "--out", str(tmp_path / "c"))
    result = run("token", "--home", str(tmp_path / "c"), "--as", "bank-a", "--audience", "nonsense")
    assert result.exit_code == 2
    assert "'nonsense' is not one of 'chain', 'identity', 'credit', 'roadhealth'" in result.output
    assert "eyJ" not in result.output


def test_gov_vote_on_something_that_is_not_a_proposal_id_says_what_one_is(tmp_path: Path) -> None:
    run("init", "--out", str(tmp_path / "c"))
    result = run("gov", "vote", "deadbeef", "--as", "regulator", "--home", str(tmp_path / "c"))
    assert result.exit_code == 2
    assert "'deadbeef' is not a proposal id" in result.output
    assert "the 64-hex id `smartcity gov propose` printed" in result.output
    assert "pattern" not in result.output


def test_gov_vote_on_an_unknown_or_closed_proposal_says_so(suite: tuple[Path, str]) -> None:
    data, url = suite
    common = ["--home", str(data), "--node", url]
    unknown = run("gov", "vote", "ab" * 32, "--as", "regulator", *common)
    assert unknown.exit_code == 1 and f"no proposal {'ab' * 32} on the chain" in unknown.output
    params = '{"contract": "credit", "method": "approve_model", "args": {"sha256": "' + "cd" * 32
    proposed = run("gov", "propose", "invoke", params + '"}}', "--as", "regulator", *common)
    assert proposed.exit_code == 0, proposed.output
    pid = proposed.stdout.strip()
    rejected = run("gov", "vote", pid, "--as", "city-agency", "--reject", *common)
    assert rejected.exit_code == 0 and "is open" in rejected.output
    closed = run("gov", "vote", pid, "--as", "road-authority", "--reject", *common)
    assert closed.exit_code == 0 and "is rejected" in closed.output
    again = run("gov", "vote", pid, "--as", "road-authority", *common)
    assert again.exit_code == 1
    assert f"proposal {pid}: invoke is rejected" in again.output
    assert "takes no more votes" in again.output


def test_up_on_a_busy_port_says_so_in_one_line_and_opens_nothing(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("up", "--data", str(tmp_path / "data"), "--port", str(port))
    assert result.exit_code == 1
    assert result.output == f"error: port {port} on 127.0.0.1 is in use; stop it or pass --port\n"
    assert not (tmp_path / "data").exists()


def test_each_new_chain_has_its_own_id_so_a_bundle_from_another_chain_says_so(
    suite: tuple[Path, str], tmp_path: Path
) -> None:
    data, url = suite
    deed = tmp_path / "deed.txt"
    deed.write_text("parcel 9")
    anchored = run("anchor", str(deed), "--home", str(data), "--as", "bank-a", "--node", url)
    assert anchored.exit_code == 0, anchored.output
    run("init", "--out", str(tmp_path / "other"))
    ours, theirs = SuiteHome(data).genesis(), SuiteHome(tmp_path / "other").genesis()
    assert ours.chain_id != theirs.chain_id
    assert ours.chain_id.startswith("smartcity-demo-") and theirs.chain_id.startswith(
        "smartcity-demo-"
    )
    other_genesis = str(tmp_path / "other" / "genesis.json")
    result = run("verify-proof", str(deed) + ".proof.json", "--genesis", other_genesis)
    assert result.exit_code == 1
    assert result.output == (
        f"error: INVALID: this bundle is from another chain (genesis {theirs.hash[:16]}… is chain"
        f" '{theirs.chain_id}', the bundle's chain is '{ours.chain_id}')\n"
    )
    assert (
        run(
            "verify-proof", str(deed) + ".proof.json", "--genesis", str(data / "genesis.json")
        ).exit_code
        == 0
    )
