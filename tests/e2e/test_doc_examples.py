"""docs/api.md's, credit.md's and operations.md's examples, run as written against a fresh suite.

A guide's ```sh blocks run in order in one bash session with `set -euo pipefail`; each
```python block is saved to a file and run with the venv's python at its place in that session
(```json and ```text blocks are answers and call shapes, not examples). The folder is laid out
like the clone (`data`, `.venv`, `docs`), with the suite's port in place of 8000. api.md runs
first on the fresh `smartcity up --simulate` (its committee example approves the credit model),
then credit.md, then operations.md (its configuration errors, a busy port, a backup and restore
of a running validator, the compose secrets). An example that fails, or whose output is not what
the guide says, fails this test.
"""

from __future__ import annotations

import json
import re
import shlex
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest

from smartcity.settings import Settings

from .test_readme_tour import PROVEN, ROOT, suite  # noqa: F401  (the suite fixture)

pytestmark = pytest.mark.slow
GUIDE = ROOT / "docs" / "api.md"
CREDIT_GUIDE = ROOT / "docs" / "credit.md"
OPERATIONS_GUIDE = ROOT / "docs" / "operations.md"


def guide_script(markdown: str, folder: Path, port: int) -> str:
    """One bash script: the shell blocks inline, each Python block as `python FILE`."""
    parts = []
    folder.mkdir(exist_ok=True)
    for n, (language, body) in enumerate(
        re.findall(r"```(sh|python)\n(.*?)```", markdown, flags=re.DOTALL)
    ):
        body = body.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
        body = body.replace("--port 8000", f"--port {port}")
        if language == "sh":
            parts.append(body)
        else:
            path = folder / f"example_{n}.py"
            path.write_text(body)
            parts.append(f"python {shlex.quote(str(path))}\n")
    # each guide is read in a shell of its own, with the clone's venv active as its intro says
    return "set -euo pipefail\nsource .venv/bin/activate\n" + "".join(parts)


def test_every_block_of_the_api_guide_is_an_example_to_run() -> None:
    text = GUIDE.read_text()
    blocks = re.findall(r"```(\w+)\n", text)
    # every fenced block of api.md is a shell or Python example (no untested pseudo-code)
    assert set(blocks) == {"sh", "python"} and len(blocks) >= 10, blocks
    assert text.count("```") == 2 * len(blocks)
    # credit.md marks what is not run: answers (json) and call shapes (text)
    text = CREDIT_GUIDE.read_text()
    blocks = re.findall(r"```(\w+)\n", text)
    assert set(blocks) == {"sh", "python", "json", "text"} and blocks.count("python") >= 5
    assert text.count("```") == 2 * len(blocks)
    # operations.md: commands are sh; outputs and synopses text, a settings file toml, a log json
    text = OPERATIONS_GUIDE.read_text()
    blocks = re.findall(r"```(\w+)\n", text)
    assert set(blocks) == {"sh", "text", "toml", "json"} and blocks.count("sh") >= 4, blocks
    assert text.count("```") == 2 * len(blocks)
    # the settings file names only keys a process accepts; the log line is one JSON object
    (settings,) = re.findall(r"```toml\n(.*?)```", text, flags=re.DOTALL)
    assert set(tomllib.loads(settings)) <= set(Settings.model_fields)
    (line,) = re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)
    assert {"time", "level", "logger", "message", "request_id"} <= set(json.loads(line))


def run_guide(guide: Path, folder: Path, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", guide_script(guide.read_text(), folder / f"examples-{guide.stem}", port)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=1200,
    )


@pytest.mark.timeout(2400)
def test_the_api_credit_and_operations_guides_run_as_written(
    suite: tuple[Path, int, str],  # noqa: F811
) -> None:
    folder, port, _ = suite
    for name in (".venv", "docs"):
        (folder / name).symlink_to(ROOT / name)

    done = run_guide(GUIDE, folder, port)

    out = done.stdout
    assert done.returncode == 0, f"the guide's examples failed:\n{out}\n{done.stderr}"
    # authentication: a token opens the credit API; the SDK mints the same
    assert "1 model version(s) installed" in out and "token for bank-a: eyJ" in out
    # the agency: a type, keys, admitted by the committee, a credential issued and revoked
    assert "ResidenceCredential\ndid:smartcity:city-agency\n" in out
    assert "invoke is executed (approved by city-agency, regulator" in out
    assert "True\n1 revoked" in out
    # the committee approves the model; the SME is rated and grants consent
    assert '"status": "executed"' in out
    assert re.search(r"^rated [A-C]+ - [A-Z][a-z ]+: .+ points$", out, flags=re.M), out
    assert "0 inquiries so far" in out
    # the bank reads under consent, verifies offline, and sees its own read
    assert re.search(r"^grade [A-C]+ proven at block \d+$", out, flags=re.M)
    assert "1 read(s) by bank-a" in out
    assert re.search(PROVEN.format(uscc="91440300000000019B"), out, flags=re.M), out
    # the road authority: a device registered and suspended, the network, alerts, a proof
    assert "register_device veh-0042: committed" in out
    assert "suspend_device veh-0042: committed" in out
    assert "17 segments" in out and "https://works.example/hooks/road" in out
    # the regulator's observer and the audit; any organisation anchors and proves
    assert re.search(r"^ok \d+$", out.rstrip().splitlines()[-1]), out

    done = run_guide(CREDIT_GUIDE, folder, port)

    out = done.stdout
    assert done.returncode == 0, f"credit.md's examples failed:\n{out}\n{done.stderr}"
    assert re.search(r"^\[\('[0-9a-f]{12}', 'approved'\)\]$", out, flags=re.M), out
    assert "registered: 201\nperiods: ['2022', '2023', '2024']\n" in out
    reason = r"^grade [A-C]+ - [A-Z][a-z ]+: .+ is .+, which lowers the score by"
    assert re.search(reason, out, re.M), out
    assert "consent live: True\n0 inquiries\n" in out
    assert "bank-a reads: 200\nafter the revocation: 403 consent_revoked\n" in out
    assert re.search(PROVEN.format(uscc="911101080000000194"), out, flags=re.M), out
    assert re.search(r"^\d+ inquiries on the chain; 1 of 911101080000000194$", out, flags=re.M)
    assert re.search(r"^approved model, hold-out AUC 0\.9\d+$", out, flags=re.M), out
    # the agency's batch: three SMEs, one anchored root, a bank's read proven in the batch
    assert "registered: 201\nrated 3 failed 0 in 2 transactions\nread from batch True\n" in out
    assert re.search(
        r"^VALID: Record sha256 [0-9a-f]{12}… is number 1 of 3 in the batch 'credit ratings'"
        r" anchored by bsn-operator in block \d+ of chain .+\.\nThe file data/rating\.json is that"
        r" record \(sha256 [0-9a-f]{64}\)\.$",
        out,
        flags=re.M,
    ), out

    done = run_guide(OPERATIONS_GUIDE, folder, port)

    out, err = done.stdout, done.stderr
    assert done.returncode == 0, f"operations.md's examples failed:\n{out}\n{err}"
    # a bad setting: one line naming it, exit status 2, nothing started
    assert "error: invalid configuration: SMARTCITY_LOG_LEVEL='LOUD': Input should be" in err
    assert "data/typo.toml: unknown key 'database_ur' (known keys: database_url," in err
    assert out.startswith("exit status 2\nexit status 2\n"), out
    # a busy port: one line naming the suite that holds it
    busy = rf"^error: port {port} on 127\.0\.0\.1 is in use by another smartcity suite \(chain"
    assert re.search(
        busy + r" smartcity-demo-[0-9a-f]{6}, genesis [0-9a-f]{16}…\); stop it", err, re.M
    )
    assert "\nexit status 1\n" in out
    # a running validator backed up and restored into a new home, which is not started
    assert re.search(r"^backed up validator-2 of chain .+ key not included", out, re.M), out
    assert "verified and restored validator-2 of chain" in out
    assert (folder / "data" / "restored" / "validator-2" / "chain.db").is_file()
    # the compose secrets: readable by their owner only
    secrets = folder / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    for name in ("postgres_password", "mosquitto_passwd", "mqtt_gateway_0", "mqtt_roadhealth"):
        assert stat.S_IMODE((secrets / name).stat().st_mode) == 0o600, name
    users = [line.split(":")[0] for line in (secrets / "mosquitto_passwd").read_text().split()]
    assert users == ["gateway-0", "gateway-1", "roadhealth", "veh-0042"]
