"""The road-health contract: the device registry, the segment registry and audited road facts.

State (namespace `roadhealth`):
- `device:<id>` = {"pub_key", "status": "active"|"suspended", "vehicle_class", "home_segment",
  "registered_by", "since", "changed_at"[, "reason"]}: the gateway reads `pub_key` and `status`.
- `devkey:<pub_key>` = device id (one key, one device).
- `segment:<id>` = {"geometry_hash", "length_m", "revision", "requested_by", "since", "changed_at"}.
- `condition:<segment>` = {"condition", "iri_milli", "lower_milli", "upper_milli", "windows",
  "evidence", "height"}: the last condition class the service attested.
- `pothole:<id>` = {"segment", "chainage_dm", "reports", "vehicles", "confidence_pct",
  "evidence", "status", "since", "height"}.

Devices are written only by the road authority's own signature (a gateway or service key can
never enrol a device); segments by the authority or relayed by the service's operator key naming
the requesting organisation; conditions and potholes are attested by the service (operator).
No raw telemetry: evidence is a hash over the anchored message hashes behind a fact.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chain.contracts.framework import Args, Context, Contract, method
from chain.contracts.membership import KEY_SHAPES, PUB_KEY, chain_suite
from chain.errors import ContractError
from chain.state import StateView
from chain.suites import suite_for

NAMESPACE = "roadhealth"
DEVICE_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
SEGMENT_ID = r"^[a-z0-9][a-z0-9_-]{0,63}$"
POTHOLE_ID = r"^[a-z0-9][a-z0-9_.:-]{0,127}$"
ORG_ID = r"^[a-z0-9][a-z0-9-]{1,62}$"
HEX32 = r"^[0-9a-f]{64}$"
CODE = r"^[a-z][a-z0-9_]{0,63}$"
VEHICLE_CLASSES = ("bus", "car", "golden", "van")
MAX_SEGMENTS_PER_TX = 200
AUTHORITY = "road_authority"
OPERATOR = "operator"

VehicleClass = Literal["bus", "car", "golden", "van"]
Condition = Literal["good", "fair", "poor"]


def device_key(device: str) -> str:
    return f"device:{device}"


def segment_key(segment: str) -> str:
    return f"segment:{segment}"


class RegisterDeviceArgs(Args):
    device: str = Field(pattern=DEVICE_ID)
    pub_key: str = Field(pattern=PUB_KEY)  # either suite's shape; the chain's is checked
    vehicle_class: VehicleClass
    home_segment: str | None = Field(default=None, pattern=SEGMENT_ID)


class DeviceArgs(Args):
    device: str = Field(pattern=DEVICE_ID)


class SuspendDeviceArgs(Args):
    device: str = Field(pattern=DEVICE_ID)
    reason: str = Field(default="suspended", pattern=CODE)


class SegmentEntry(Args):
    segment: str = Field(pattern=SEGMENT_ID)
    geometry_hash: str = Field(pattern=HEX32)
    length_m: int = Field(ge=1, le=1_000_000)


class RegisterSegmentsArgs(Args):
    segments: list[SegmentEntry] = Field(min_length=1, max_length=MAX_SEGMENTS_PER_TX)
    requested_by: str | None = Field(default=None, pattern=ORG_ID)


class ConditionArgs(Args):
    segment: str = Field(pattern=SEGMENT_ID)
    condition: Condition
    iri_milli: int = Field(ge=0, le=100_000)
    lower_milli: int = Field(ge=0, le=100_000)
    upper_milli: int = Field(ge=0, le=100_000)
    windows: int = Field(ge=1)
    evidence: str = Field(pattern=HEX32)


class PotholeArgs(Args):
    pothole: str = Field(pattern=POTHOLE_ID)
    segment: str = Field(pattern=SEGMENT_ID)
    chainage_dm: int = Field(ge=0, le=10_000_000)
    reports: int = Field(ge=1)
    vehicles: int = Field(ge=1)
    confidence_pct: int = Field(ge=0, le=100)
    evidence: str = Field(pattern=HEX32)


class RepairArgs(Args):
    pothole: str = Field(pattern=POTHOLE_ID)


class RoadHealthContract(Contract):
    """Device and segment registries, and the road facts worth an audit trail."""

    name = NAMESPACE

    # -- devices (the road authority's own signature) --------------------------------------

    @method(RegisterDeviceArgs)
    def register_device(self, ctx: Context, state: StateView, args: RegisterDeviceArgs) -> None:
        ctx.require_role(AUTHORITY)
        # Verify the key is usable and neither the device nor the key is registered
        suite = chain_suite(state)
        if not suite_for(suite).is_usable_public_key(args.pub_key):
            raise ContractError("bad_key", f"pub_key is not a usable {KEY_SHAPES[suite]}")
        if state.get(device_key(args.device)) is not None:
            raise ContractError("device_exists", f"device {args.device} is already registered")
        holder = state.get(f"devkey:{args.pub_key}")
        if holder is not None:
            raise ContractError("key_in_use", f"the key is already registered to device {holder}")
        if args.home_segment is not None and state.get(segment_key(args.home_segment)) is None:
            raise ContractError("unknown_segment", f"no segment {args.home_segment}")
        state.put(
            device_key(args.device),
            {
                "pub_key": args.pub_key,
                "status": "active",
                "vehicle_class": args.vehicle_class,
                "home_segment": args.home_segment,
                "registered_by": ctx.sender_org,
                "since": ctx.height,
                "changed_at": ctx.height,
            },
        )
        state.put(f"devkey:{args.pub_key}", args.device)
        ctx.emit("device_registered", device=args.device, vehicle_class=args.vehicle_class)

    @method(SuspendDeviceArgs)
    def suspend_device(self, ctx: Context, state: StateView, args: SuspendDeviceArgs) -> None:
        ctx.require_role(AUTHORITY)
        record = _existing_device(state, args.device)
        # Verify the device is active
        if record["status"] != "active":
            raise ContractError("device_suspended", f"device {args.device} is already suspended")
        state.put(
            device_key(args.device),
            {**record, "status": "suspended", "reason": args.reason, "changed_at": ctx.height},
        )
        ctx.emit("device_suspended", device=args.device, reason=args.reason)

    @method(DeviceArgs)
    def reinstate_device(self, ctx: Context, state: StateView, args: DeviceArgs) -> None:
        ctx.require_role(AUTHORITY)
        record = _existing_device(state, args.device)
        # Verify the device is suspended
        if record["status"] != "suspended":
            raise ContractError("device_active", f"device {args.device} is not suspended")
        record = {k: v for k, v in record.items() if k != "reason"}
        state.put(device_key(args.device), {**record, "status": "active", "changed_at": ctx.height})
        ctx.emit("device_reinstated", device=args.device)

    # -- segments (the authority, or relayed by the service naming the authority) ----------

    @method(RegisterSegmentsArgs)
    def register_segments(self, ctx: Context, state: StateView, args: RegisterSegmentsArgs) -> None:
        ctx.require_role(AUTHORITY, OPERATOR)
        requester = _requester(ctx, args.requested_by)
        # Verify no segment appears twice in one call
        ids = [s.segment for s in args.segments]
        if len(set(ids)) != len(ids):
            raise ContractError("duplicate_segment", "a segment appears twice in one call")
        for entry in args.segments:
            current = state.get(segment_key(entry.segment))
            if current is not None and current["geometry_hash"] == entry.geometry_hash:
                continue  # re-registering the same geometry is a harmless retry
            revision = 1 if current is None else int(current["revision"]) + 1
            state.put(
                segment_key(entry.segment),
                {
                    "geometry_hash": entry.geometry_hash,
                    "length_m": entry.length_m,
                    "revision": revision,
                    "requested_by": requester,
                    "since": ctx.height if current is None else current["since"],
                    "changed_at": ctx.height,
                },
            )
            ctx.emit(
                "segment_registered",
                segment=entry.segment,
                geometry_hash=entry.geometry_hash,
                revision=revision,
            )

    # -- attested facts (the service's operator key) -----------------------------------------

    @method(ConditionArgs)
    def record_condition(self, ctx: Context, state: StateView, args: ConditionArgs) -> None:
        ctx.require_role(OPERATOR)
        _existing_segment(state, args.segment)
        # Verify the interval contains the estimate
        if not args.lower_milli <= args.iri_milli <= args.upper_milli:
            raise ContractError("bad_interval", "need lower_milli <= iri_milli <= upper_milli")
        previous = state.get(f"condition:{args.segment}")
        state.put(
            f"condition:{args.segment}",
            {
                "condition": args.condition,
                "iri_milli": args.iri_milli,
                "lower_milli": args.lower_milli,
                "upper_milli": args.upper_milli,
                "windows": args.windows,
                "evidence": args.evidence,
                "height": ctx.height,
            },
        )
        ctx.emit(
            "condition_changed",
            segment=args.segment,
            before=None if previous is None else previous["condition"],
            after=args.condition,
            iri_milli=args.iri_milli,
        )

    @method(PotholeArgs)
    def confirm_pothole(self, ctx: Context, state: StateView, args: PotholeArgs) -> None:
        ctx.require_role(OPERATOR)
        _existing_segment(state, args.segment)
        previous = state.get(f"pothole:{args.pothole}")
        # Verify an update only adds reports to the same pothole
        if previous is not None and previous["segment"] != args.segment:
            raise ContractError("pothole_moved", f"pothole {args.pothole} is on another segment")
        if previous is not None and args.reports < previous["reports"]:
            raise ContractError("stale_pothole", "an update cannot have fewer reports")
        state.put(
            f"pothole:{args.pothole}",
            {
                "segment": args.segment,
                "chainage_dm": args.chainage_dm,
                "reports": args.reports,
                "vehicles": args.vehicles,
                "confidence_pct": args.confidence_pct,
                "evidence": args.evidence,
                "status": "confirmed",
                "since": ctx.height if previous is None else previous["since"],
                "height": ctx.height,
            },
        )
        name = "pothole_confirmed" if previous is None else "pothole_updated"
        ctx.emit(name, pothole=args.pothole, segment=args.segment, reports=args.reports)

    @method(RepairArgs)
    def mark_repaired(self, ctx: Context, state: StateView, args: RepairArgs) -> None:
        ctx.require_role(AUTHORITY)
        previous = state.get(f"pothole:{args.pothole}")
        # Verify the pothole is confirmed and open
        if previous is None:
            raise ContractError("unknown_pothole", f"no pothole {args.pothole}")
        if previous["status"] == "repaired":
            raise ContractError("already_repaired", f"pothole {args.pothole} is repaired")
        state.put(f"pothole:{args.pothole}", {**previous, "status": "repaired"})
        ctx.emit("pothole_repaired", pothole=args.pothole, segment=previous["segment"])


def _existing_device(state: StateView, device: str) -> dict[str, object]:
    record: dict[str, object] | None = state.get(device_key(device))
    if record is None:
        raise ContractError("unknown_device", f"no device {device}")
    return record


def _existing_segment(state: StateView, segment: str) -> None:
    if state.get(segment_key(segment)) is None:
        raise ContractError("unknown_segment", f"no segment {segment}")


def _requester(ctx: Context, requested_by: str | None) -> str:
    """Who asked: the authority itself, or the organisation an operator relays for."""
    if AUTHORITY in ctx.sender_roles:
        return ctx.sender_org
    if requested_by is None:
        raise ContractError("bad_args", "an operator relaying a call must name requested_by")
    return requested_by
