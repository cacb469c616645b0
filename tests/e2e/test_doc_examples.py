"""docs/api.md's examples, run exactly as written against a fresh `smartcity up --simulate`.

Its ```sh blocks run in order in one bash session with `set -euo pipefail`; each ```python
block is saved to a file and run with the venv's python at its place in that session. The
folder is laid out like the clone (`data`, `.venv`, `docs`), with the suite's port in place of
8000. An example that fails, or whose output is not what the guide says, fails this test.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest

from .test_readme_tour import ROOT, suite  # noqa: F401  (the suite fixture)

pytestmark = pytest.mark.slow
GUIDE = ROOT / "docs" / "api.md"


def guide_script(markdown: str, folder: Path, port: int) -> str:
    """One bash script: the shell blocks inline, each Python block as `python FILE`."""
    parts = []
    for n, (language, body) in enumerate(
        re.findall(r"```(sh|python)\n(.*?)```", markdown, flags=re.DOTALL)
    ):
        body = body.replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
        if language == "sh":
            parts.append(body)
        else:
            path = folder / f"example_{n}.py"
            path.write_text(body)
            parts.append(f"python {shlex.quote(str(path))}\n")
    return "set -euo pipefail\n" + "".join(parts)


def test_every_block_of_the_api_guide_is_an_example_to_run() -> None:
    text = GUIDE.read_text()
    blocks = re.findall(r"```(\w+)\n", text)
    # every fenced block is a shell or Python example (no untested pseudo-code)
    assert set(blocks) == {"sh", "python"} and len(blocks) >= 10, blocks
    assert text.count("```") == 2 * len(blocks)


@pytest.mark.timeout(1800)
def test_the_api_guide_runs_as_written(suite: tuple[Path, int, str]) -> None:  # noqa: F811
    folder, port, _ = suite
    for name in (".venv", "docs"):
        (folder / name).symlink_to(ROOT / name)
    scripts = folder / "examples"
    scripts.mkdir()

    done = subprocess.run(
        ["bash", "-c", guide_script(GUIDE.read_text(), scripts, port)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=1500,
    )

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
    assert "1 read(s) by bank-a" in out and "VALID: credit/rating:91440300000000019B" in out
    # the road authority: a device registered and suspended, the network, alerts, a proof
    assert "register_device veh-0042: committed" in out
    assert "suspend_device veh-0042: committed" in out
    assert "17 segments" in out and "https://works.example/hooks/road" in out
    # the regulator's observer and the audit; any organisation anchors and proves
    assert re.search(r"^ok \d+$", out.rstrip().splitlines()[-1]), out
