"""`vc issue|verify`: the implementation contract of the W3C vc-jose-cose-test-suite.

Writes `{"result": "success"|"failure"|"indeterminate"|"error", "data": "..."}` to --output:
`failure` when the input is refused (bad signature, media type, claims), `error` when the
command itself cannot run (unreadable files, unusable key file). JOSE, SD-JWT and COSE
(COSE_Sign1, base64) are offered. Verification does not apply a clock: the suite's fixtures are
long expired, and the contract tests the securing format, not a policy.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from chain.json_types import JsonObject

# The securing formats (jwcrypto, FastAPI's error types) are imported when a command runs, so
# that `smartcity vc --help` answers at once.

FEATURES = (
    "credential_jose",
    "presentation_jose",
    "credential_sdjwt",
    "presentation_sdjwt",
    "credential_cose",
    "presentation_cose",
)
EXIT_BY_RESULT = {"success": 0, "failure": 1, "indeterminate": 2, "error": 2}


class CommandError(Exception):
    """The command cannot run at all (the `error` result)."""


def _load_vm(path: str) -> JsonObject:
    try:
        vm = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CommandError(f"cannot read verification method {path}: {exc}") from exc
    if not isinstance(vm, dict) or not isinstance(vm.get("publicKeyJwk"), dict):
        raise CommandError("the verification method needs a publicKeyJwk")
    return vm


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read input {path}: {exc}") from exc


def _parse_sd(value: str | None) -> list[str]:
    if not value:
        return []
    try:
        paths = json.loads(value)
    except ValueError:
        paths = [p.strip() for p in value.split(",") if p.strip()]
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise CommandError("--sd must be a JSON array of paths")
    return paths


def _issue(feature: str, text: str, vm: JsonObject, sd: list[str]) -> str:
    from services.identity.credentials import sd_jwt, vc_cose, vc_jose
    from services.identity.credentials.jose import parse_json_object

    document = parse_json_object(text.encode("utf-8"), "input")
    key = vm.get("secretKeyJwk")
    if not isinstance(key, dict):
        raise CommandError("issuing needs a secretKeyJwk")
    named = vm.get("id")
    kid = named if isinstance(named, str) else None
    issuers: dict[str, Callable[[], str]] = {
        "credential_jose": lambda: vc_jose.issue_credential(document, key, kid=kid),
        "presentation_jose": lambda: vc_jose.issue_presentation(document, key, kid=kid),
        "credential_sdjwt": lambda: sd_jwt.issue_sd_credential(document, key, disclose=sd, kid=kid),
        "presentation_sdjwt": lambda: sd_jwt.issue_sd_presentation(
            document, key, disclose=sd, kid=kid
        ),
        "credential_cose": lambda: vc_cose.issue_credential(document, key, kid=kid),
        "presentation_cose": lambda: vc_cose.issue_presentation(document, key, kid=kid),
    }
    return issuers[feature]()


def _verify(feature: str, text: str, vm: JsonObject) -> str:
    from services.identity.credentials import sd_jwt, vc_cose, vc_jose

    key = vm["publicKeyJwk"]
    token = text.strip()
    document: dict[str, Any]
    if feature == "credential_jose":
        document = vc_jose.verify_credential(token, key).document
    elif feature == "presentation_jose":
        document = vc_jose.verify_presentation(token, key).claims
    elif feature == "credential_sdjwt":
        document = sd_jwt.verify_sd_credential(token, key).document
    elif feature == "credential_cose":
        document = vc_cose.verify_credential(token, key).document
    elif feature == "presentation_cose":
        document = vc_cose.verify_presentation(token, key)[0].document
    else:
        document = sd_jwt.verify_sd_presentation(token, key)[0].document
    return json.dumps(document, separators=(",", ":"))


def run(action: str, feature: str, input_path: str, key_path: str, sd: str | None) -> JsonObject:
    """Run one contract call and return the result object (never raises)."""
    from services.identity.errors import IdentityError

    if feature not in FEATURES:
        return {"result": "error", "data": f"unknown feature {feature}"}
    try:
        vm = _load_vm(key_path)
        text = _read(input_path)
        if action == "issue":
            data = _issue(feature, text, vm, _parse_sd(sd))
        else:
            data = _verify(feature, text, vm)
    except CommandError as exc:
        return {"result": "error", "data": str(exc)}
    except IdentityError as exc:
        return {"result": "failure", "data": f"{exc.code}: {exc}"}
    return {"result": "success", "data": data}


def _write(output: str, result: JsonObject) -> None:
    Path(output).write_text(json.dumps(result), encoding="utf-8")
    raise SystemExit(EXIT_BY_RESULT[str(result["result"])])


@click.group(name="vc")
def vc() -> None:
    """Issue and verify VC-JOSE, SD-JWT and VC-COSE credentials (vc-jose-cose-test-suite)."""


def _common(command: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(
        [
            click.option("--input", "input_path", required=True, help="credential JSON or token"),
            click.option("--key", "key_path", required=True, help="verification method JSON"),
            click.option("--feature", required=True, help=", ".join(FEATURES)),
            click.option("--output", required=True, help="where to write the result JSON"),
        ]
    ):
        command = option(command)
    return command


@vc.command()
@_common
@click.option("--sd", default=None, help='JSON array of disclosable paths, e.g. ["a.b", "c[0]"]')
def issue(input_path: str, key_path: str, feature: str, output: str, sd: str | None) -> None:
    """Secure an unsigned credential or presentation."""
    _write(output, run("issue", feature, input_path, key_path, sd))


@vc.command()
@_common
@click.option("--sd", default=None, hidden=True, help="accepted and ignored")
def verify(input_path: str, key_path: str, feature: str, output: str, sd: str | None) -> None:
    """Verify a secured credential or presentation."""
    _write(output, run("verify", feature, input_path, key_path, None))
