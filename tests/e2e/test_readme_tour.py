"""The README's tour, run exactly as written against a fresh `smartcity up --simulate`, twice.

The shell blocks of the section "A tour of the demo" are extracted from README.md and run in
order by bash with `set -euo pipefail`, in a folder laid out like the clone (`data`, `.venv`,
`docs`, README.md), with the suite's port in place of 8000. A step that fails, or whose output
differs from what the README tells the reader to expect, fails this test. The tour is then run
a second time on the same `./data`, as a reader coming back to it would, and must pass again;
neither run may leave files beside README.md (the tour writes under data/tour).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..conftest import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SMARTCITY = Path(sys.executable).with_name("smartcity")
# What `smartcity verify-proof` says of a rating proof, as the README and the guides show it
PROVEN = (
    r"^VALID: The credit rating of SME {uscc} \(grade [A-C]+, rating \d+, model [0-9a-f]{{12}}…\)"
    r" is recorded in the state after block \d+ of chain smartcity-demo-[0-9a-f]{{6}}, committed"
    r" .+ UTC and signed by \d of 4 validators \(validator-\d(, validator-\d)*\)\.$"
)
ANCHORED = (
    r"^VALID: Record sha256 [0-9a-f]{12}… is number 1 of 1 in the batch 'notarised files' anchored"
    r" by city-agency in block \d+ of chain smartcity-demo-[0-9a-f]{6}, committed .+ UTC and signed"
    r" by \d of 4 validators \(validator-\d(, validator-\d)*\)\.\nThe file README\.md is that"
    r" record \(sha256 [0-9a-f]{64}\)\.$"
)


def tour_blocks(readme: str) -> list[str]:
    """The ```sh blocks of the README's tour section, in order."""
    start = readme.index("## A tour of the demo")
    end = readme.index("\n## ", start + 1)
    return re.findall(r"```sh\n(.*?)```", readme[start:end], flags=re.DOTALL)


def test_the_tour_section_has_every_step() -> None:
    blocks = tour_blocks((ROOT / "README.md").read_text())
    assert len(blocks) == 6
    assert blocks[0].startswith("source .venv/bin/activate")


@pytest.fixture
def suite(tmp_path: Path) -> Iterator[tuple[Path, int, str]]:
    """A fresh suite with simulated sensors, as `make up SIMULATE=1` starts it."""
    port = free_port()
    env = {**os.environ, "SMARTCITY_CITY": f"tour{secrets.token_hex(3)}"}
    log = (tmp_path / "suite.log").open("wb")
    command = [str(SMARTCITY), "up", "--data", str(tmp_path / "data"), "--port", str(port)]
    # SMARTCITY_TOUR_CRYPTO=sm2-sm3 follows the tour on the national suite (CONTRIBUTING.md)
    command += ["--crypto", os.environ.get("SMARTCITY_TOUR_CRYPTO", "ed25519-sha256")]
    process = subprocess.Popen(
        [*command, "--simulate"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(base, process, tmp_path / "suite.log")
        yield tmp_path, port, base
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        # Its schemas on a shared PostgreSQL: dropped after the test (tests/conftest.py)


def _wait_until_serving(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 300  # a first start on a busy 2-core machine takes minutes
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"smartcity up exited {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"the suite did not answer within 300 s:\n{log.read_text()[-3000:]}")


def run_tour(folder: Path, port: int) -> subprocess.CompletedProcess[str]:
    script = "\n".join(tour_blocks((ROOT / "README.md").read_text()))
    script = script.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
    return subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + script],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=1200,
    )


# Two tours of a few minutes each on a quiet machine; far longer on a shared 2-core one
@pytest.mark.timeout(2400)
def test_a_new_user_follows_the_readme_tour_twice(suite: tuple[Path, int, str]) -> None:
    folder, port, _ = suite
    for name in (".venv", "docs"):
        (folder / name).symlink_to(ROOT / name)
    shutil.copy(ROOT / "README.md", folder / "README.md")
    before = {p.name for p in folder.iterdir()}

    done = run_tour(folder, port)

    out = done.stdout
    assert done.returncode == 0, f"the tour failed:\n{out}\n{done.stderr}"
    # 1. the anchored file's bundle verifies offline, said in a sentence
    assert re.search(ANCHORED, out, re.M), out
    # 2. the credential verifies, then (revoked) does not
    assert re.search(r"^True\n\d+\nFalse$", out, flags=re.MULTILINE), out
    assert "invoke is executed" in out
    # 3. refused without consent, read with it, proof valid offline, inquiry listed
    assert "bank-a before consent: HTTP 403 no_consent" in out
    assert "bank-a reads the rating: HTTP 200" in out
    assert "SME sees 1 inquiry(ies); latest by bank-a" in out
    # the bank's view of the reasons: the ratio's meaning and its cost, not the SME's values
    reason = r"^  reason: [A-Z][a-z ]+: .+, which lowers the score by [\d.]+ points$"
    assert re.search(reason, out, re.M), out
    assert re.search(
        r"^  verified offline: The credit rating of SME 91440300000000019B \(grade \w+, rating 1,"
        r" model [0-9a-f]{12}…\) is recorded in the state after block \d+ .+ validators \(.+\)\.$",
        out,
        re.M,
    ), out
    assert len(re.findall(PROVEN.format(uscc="91440300000000019B"), out, re.M)) == 1, out
    # 4. the simulated vehicles have filled the repair list by then
    assert '"rank": 1' in out
    # 5. the observer answers as a node of the same chain; the regulator counts one inquiry
    assert re.search(r'"chain_id": "smartcity-demo-[0-9a-f]{6}"', out)
    assert out.rstrip().endswith("\n1")
    # the tour's files are under data/tour, none beside README.md
    assert {p.name for p in folder.iterdir()} == before
    assert {"README.md.proof.json", "issued.json", "vc.json", "rating.proof.json"} <= {
        p.name for p in (folder / "data" / "tour").iterdir()
    }

    again = run_tour(folder, port)

    out = again.stdout
    assert again.returncode == 0, f"the second tour failed:\n{out}\n{again.stderr}"
    assert "already anchored" in again.stderr and re.search(ANCHORED, out, re.M), out
    assert "city-agency already issues ResidenceCredential" in out
    assert re.search(r"^True\n\d+\nFalse$", out, flags=re.MULTILINE), out
    assert "consent of an earlier run withdrawn: HTTP 200" in out
    assert "bank-a before consent: HTTP 403 consent_revoked" in out
    assert "SME sees 2 inquiry(ies); latest by bank-a" in out
    assert out.rstrip().endswith("\n2")
    assert {p.name for p in folder.iterdir()} == before

    # A refused request stops the step and shows the service's error, not a bare exit 22
    setup = tour_blocks((ROOT / "README.md").read_text())[0]
    setup = setup.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
    refused = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{setup}call $API/credit/inquiries | pick total"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    assert "The requested URL returned error: 401" in refused.stderr
    assert '{"error": {"code": "unauthorized", "message": "missing bearer' in refused.stderr
