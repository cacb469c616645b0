"""The device registry as the road authority runs it: transactions it signs itself, forwarded
to the chain and mirrored in the service's database, and the registry's views."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chain.errors import TxRejected
from chain.tx import tx_from_json
from services.roadhealth import schemas
from services.roadhealth.errors import BadDeviceTx, UnknownDevice
from services.roadhealth.models import RhDevice
from services.roadhealth.runtime import Runtime
from services.roadhealth.service.locks import insert_ignoring_existing

DEVICE_METHODS = frozenset({"register_device", "suspend_device", "reinstate_device"})


# -- devices --------------------------------------------------------------------------------


def submit_device_tx(
    *, rt: Runtime, session: Session, caller_key: str, tx_json: dict[str, Any]
) -> schemas.ReceiptResponse:
    """Forward a device registry transaction the road authority signed itself."""
    try:
        tx = tx_from_json(tx_json)
    except TxRejected as exc:
        raise BadDeviceTx(f"not a transaction: {exc.message}") from exc
    # Verify the transaction is the caller's own, for the device registry, and signed
    if tx.sender != caller_key:
        raise BadDeviceTx("the transaction must be signed by the key of the bearer token")
    if tx.contract != "roadhealth" or tx.method not in DEVICE_METHODS:
        raise BadDeviceTx(f"only roadhealth.{sorted(DEVICE_METHODS)} are accepted here")
    if tx.chain_id != rt.ctx.genesis.chain_id:
        raise BadDeviceTx(f"the transaction is for chain {tx.chain_id!r}")
    if not tx.has_valid_signature():
        raise BadDeviceTx("the transaction's signature does not verify")
    receipt = rt.chain.submit_signed(tx)
    device = str(tx.args["device"])
    rt.device_records.forget(device)  # the other processes learn it from the chain's events
    # Hold the mirror's row (created empty when new) before reading the chain: of two
    # processes mirroring changes of one device, the one that commits last read it last
    session.execute(
        insert_ignoring_existing(session=session, model=RhDevice).values(
            id=device, pub_key="", vehicle_class="", status="", last_tx=""
        )
    )
    row = session.scalars(
        select(RhDevice)
        .where(RhDevice.id == device)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    record = rt.chain.device(device)
    if record is None:  # cannot be: the transaction that registered or changed it committed
        raise UnknownDevice(f"device {device!r} is not on the chain")
    row.pub_key, row.vehicle_class = record["pub_key"], record["vehicle_class"]
    row.status, row.home_segment, row.last_tx = record["status"], record["home_segment"], tx.hash
    return schemas.ReceiptResponse(
        tx=receipt["tx"],
        height=receipt["height"],
        status=receipt["status"],
        events=receipt["events"],
    )


def get_device(*, rt: Runtime, device: str) -> schemas.DeviceView:
    record = rt.chain.device(device)
    if record is None:
        raise UnknownDevice(f"no device {device!r} is registered on the chain")
    return device_view(device=device, record=record)


def list_devices(*, session: Session) -> list[schemas.DeviceView]:
    return [
        schemas.DeviceView(
            device=d.id,
            pub_key=d.pub_key,
            status=d.status,
            vehicle_class=d.vehicle_class,
            home_segment=d.home_segment,
        )
        for d in session.scalars(select(RhDevice).order_by(RhDevice.id))
    ]


def device_view(*, device: str, record: dict[str, Any]) -> schemas.DeviceView:
    """A device as the chain records it."""
    return schemas.DeviceView(
        device=device,
        pub_key=record["pub_key"],
        status=record["status"],
        vehicle_class=record["vehicle_class"],
        home_segment=record.get("home_segment"),
        since=record.get("since"),
    )
