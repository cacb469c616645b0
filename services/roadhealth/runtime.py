"""What the domain functions share: settings, the chain, the segment index and the alert kick."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from services.common.context import ServiceContext
from services.common.mqtt import mqtt_url_from_env
from services.common.runtime import ServiceRuntime
from services.roadhealth.assessment.condition import ChangeRules
from services.roadhealth.assessment.windows import LiveClassifier, Thresholds, default_classifier
from services.roadhealth.chain import RoadHealthChain
from services.roadhealth.device_records import DEFAULT_CAPACITY, DeviceRecords
from services.roadhealth.errors import RoadHealthError
from services.roadhealth.network.geo import Segment
from services.roadhealth.network.matching import SegmentIndex


@dataclass(frozen=True)
class Settings:
    """Tunable behaviour; `ServiceContext.options["roadhealth"]` overrides any field."""

    city: str = "smartcity"
    thresholds: Thresholds = field(default_factory=Thresholds)
    min_windows: int = 3  # windows a segment needs before it gets a condition class
    # A class changes only on a sustained change (condition.py): margin, windows, vehicles, dwell
    change: ChangeRules = field(default_factory=ChangeRules)
    # A segment's IRI is the mean of its newest windows, so a road that deteriorates shows it
    # within a few passes rather than after as many windows as it has history (0: all windows)
    recent_windows: int = 60
    # One pothole report's position error along the road (GPS at the window's start), the
    # scale by which reports are grouped into potholes (clustering.py)
    report_position_sigma_m: float = 3.0
    pothole_min_vehicles: int = 3  # distinct vehicles that must see a pothole to confirm it
    # An open pothole that vehicles drive over without a report is marked repaired once this
    # many passes, by this many distinct vehicles, came since its last report, and that report
    # is this old in window time (service/repairs.py)
    pothole_repair_passes: int = 20
    pothole_repair_vehicles: int = 3
    pothole_repair_quiet_s: float = 86_400.0
    # A window passes over a pothole only if it covers this much road either side of it (a
    # shock near a window's ends is judged on a clamped piece, or not at all)
    pothole_pass_margin_m: float = 5.0
    horizon_days: float = 90.0  # windows older than this (before a segment's newest) are ignored
    webhooks: tuple[str, ...] = ()
    mqtt_url: str | None = None
    webhook_max_attempts: int = 6
    webhook_timeout_s: float = 5.0
    retry_base_s: float = 0.5
    load_demo: bool = True
    # Registered devices' records kept between batches while the chain's event stream is
    # followed (device_records.py): twice the fleet, least recently used dropped first
    device_records_kept: int = DEFAULT_CAPACITY

    def __post_init__(self) -> None:
        # Verify the pothole settings make sense before the service runs on them
        for name in ("pothole_min_vehicles", "pothole_repair_passes", "pothole_repair_vehicles"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SettingsError(f"roadhealth.{name} must be a whole number >= 1, got {value!r}")
        if self.pothole_repair_vehicles > self.pothole_repair_passes:
            raise SettingsError(
                "roadhealth.pothole_repair_vehicles cannot exceed pothole_repair_passes"
                f" ({self.pothole_repair_vehicles} > {self.pothole_repair_passes}):"
                " each pass is one vehicle's"
            )
        for name, low in (
            ("report_position_sigma_m", 0.0),
            ("pothole_repair_quiet_s", None),
            ("pothole_pass_margin_m", None),
        ):
            value = getattr(self, name)
            if not _number(value) or value < 0 or (low is not None and value <= low):
                bound = "> 0" if low is not None else ">= 0"
                raise SettingsError(f"roadhealth.{name} must be a number {bound}, got {value!r}")

    @classmethod
    def from_context(cls, ctx: ServiceContext) -> Settings:
        raw: dict[str, Any] = dict(ctx.options.get("roadhealth", {}))
        thresholds = Thresholds(
            float(raw.pop("good_below", 1.5)), float(raw.pop("poor_above", 2.68))
        )
        defaults = ChangeRules()
        change = ChangeRules(
            margin=float(raw.pop("condition_margin", defaults.margin)),
            min_windows=int(raw.pop("condition_min_windows", defaults.min_windows)),
            min_vehicles=int(raw.pop("condition_min_vehicles", defaults.min_vehicles)),
            min_dwell_s=float(raw.pop("condition_min_dwell_s", defaults.min_dwell_s)),
        )
        raw.setdefault("city", os.environ.get("SMARTCITY_CITY", "smartcity"))
        raw.setdefault("mqtt_url", mqtt_url_from_env())
        hook = os.environ.get("SMARTCITY_ROADHEALTH_WEBHOOK")
        raw["webhooks"] = tuple(raw.get("webhooks", ())) + ((hook,) if hook else ())
        raw.setdefault("load_demo", ctx.demo)
        return cls(thresholds=thresholds, change=change, **raw)


class SettingsError(RoadHealthError, ValueError):
    """A road-health setting the service cannot run on (raised when the settings are made)."""

    code = "bad_settings"


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class Runtime(ServiceRuntime):
    """What the domain needs besides the session: settings, chain, segment index, classifier."""

    settings: Settings
    index: SegmentIndex = field(default_factory=lambda: SegmentIndex([]))
    # The surface classifier that judges each detected event (the shipped one by default)
    classifier: LiveClassifier | None = field(default_factory=default_classifier)
    kick_alerts: Callable[[], None] = lambda: None
    # The network version (RhNetwork) the index was built from; ingestion rebuilds the index
    # when the database holds another one (a segment import by another process)
    index_version: int = -1
    chain: RoadHealthChain = field(init=False)
    device_records: DeviceRecords = field(init=False)

    def __post_init__(self) -> None:
        self.chain = RoadHealthChain(self.ctx)
        self.device_records = DeviceRecords(
            self.chain.device, capacity=self.settings.device_records_kept
        )

    def reindex(self, segments: Sequence[Segment], *, version: int) -> None:
        self.index = SegmentIndex(segments)
        self.index_version = version
