"""The pre-flight's read-only AWS calls: availability zones, instance type offerings per AZ and
capacity reservations. Each error becomes a message for the report (with the permission it
needs), never a traceback."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

if TYPE_CHECKING:   # boto3 takes 0.1 s to import: only when the pre-flight runs (plan/preflight)
    import boto3

AUTH_ERROR_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "AuthFailure", "ExpiredToken", "ExpiredTokenException",
    "InvalidClientTokenId", "RequestExpired", "SignatureDoesNotMatch", "UnauthorizedOperation",
    "UnrecognizedClientException",
})
PERMISSIONS_HINT = (
    "pre-flight needs valid AWS credentials with ec2:DescribeAvailabilityZones, "
    "ec2:DescribeInstanceTypeOfferings, ec2:DescribeCapacityReservations, servicequotas:GetServiceQuota and "
    "servicequotas:GetAWSDefaultServiceQuota"
)
# Reservations Karpenter can launch into (EC2 API Reference, CapacityReservation.State): `active`
# now; `scheduled` is a Capacity Block (or future-dated ODCR) that has not started yet.
USABLE_RESERVATION_STATES = ("active", "scheduled")


class AwsError(Exception):
    """An AWS call failed; the message is ready for the report."""


def describe(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "Unknown")
        text = f"{code}: {err.get('Message', '')}".rstrip(": ")
        if code in AUTH_ERROR_CODES:
            text += f" ({PERMISSIONS_HINT})"
        return text
    if isinstance(exc, NoCredentialsError):
        return f"no AWS credentials found ({PERMISSIONS_HINT})"
    return f"{type(exc).__name__}: {exc}"


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def client(session: boto3.Session, clients: Mapping[str, Any] | None, service: str) -> Any:
    """An injected client (tests: a recorded account), else one from the session."""
    if clients and service in clients:
        return clients[service]
    return session.client(service)  # type: ignore[call-overload]


def zone_names(ec2: Any) -> list[str]:
    try:
        zones = ec2.describe_availability_zones()["AvailabilityZones"]
    except (ClientError, BotoCoreError) as exc:
        raise AwsError(f"cannot list availability zones: {describe(exc)}") from exc
    return sorted(z["ZoneName"] for z in zones
                  if z.get("ZoneType", "availability-zone") == "availability-zone"
                  and z.get("State", "available") == "available")


def first_azs(names: Sequence[str], az_count: int) -> list[str]:
    """The first ``az_count`` zone names in name order (the network layer's rule)."""
    return sorted(names)[:az_count]


def offerings(ec2: Any, instance_types: Sequence[str], azs: Sequence[str]) -> dict[str, set[str]]:
    """Instance type -> the AZs of ``azs`` where EC2 offers it."""
    offered: dict[str, set[str]] = {t: set() for t in instance_types}
    paginator = ec2.get_paginator("describe_instance_type_offerings")
    try:
        for start in range(0, len(instance_types), 100):  # keep filter value lists short
            pages = paginator.paginate(LocationType="availability-zone", Filters=[
                {"Name": "instance-type", "Values": list(instance_types[start:start + 100])},
                {"Name": "location", "Values": list(azs)}])
            for page in pages:
                for offer in page.get("InstanceTypeOfferings", []):
                    if offer["InstanceType"] in offered and offer["Location"] in azs:
                        offered[offer["InstanceType"]].add(offer["Location"])
    except (ClientError, BotoCoreError) as exc:
        raise AwsError(f"cannot read instance type offerings: {describe(exc)}") from exc
    return offered


@dataclass(frozen=True)
class Reservation:
    """One EC2 capacity reservation (an ODCR, or a Capacity Block: reservation type `capacity-block`)."""

    id: str
    instance_type: str
    zone: str
    state: str
    total: int
    available: int
    kind: str          # default | capacity-block
    match: str         # open | targeted
    owner: str


def _filters(term: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A Karpenter capacityReservationSelectorTerm as DescribeCapacityReservations arguments:
    `id` -> CapacityReservationIds; `tags` -> tag:<key> filters ('*' matches any value: tag-key);
    `ownerID` -> owner-id; `instanceMatchCriteria` -> instance-match-criteria."""
    if term.get("id"):
        return {"CapacityReservationIds": [term["id"]]}, []
    filters = [{"Name": "state", "Values": list(USABLE_RESERVATION_STATES)}]
    for key, value in sorted((term.get("tags") or {}).items()):
        filters.append({"Name": "tag-key", "Values": [key]} if value == "*" else
                       {"Name": f"tag:{key}", "Values": [value]})
    if term.get("ownerID"):
        filters.append({"Name": "owner-id", "Values": [term["ownerID"]]})
    if term.get("instanceMatchCriteria"):
        filters.append({"Name": "instance-match-criteria", "Values": [term["instanceMatchCriteria"]]})
    return {}, filters


def reservations(ec2: Any, term: Mapping[str, Any]) -> list[Reservation]:
    """The capacity reservations one selector term selects (ec2:DescribeCapacityReservations)."""
    ids, filters = _filters(term)
    kwargs: dict[str, Any] = {**ids, **({"Filters": filters} if filters else {})}
    out: list[Reservation] = []
    try:
        for page in ec2.get_paginator("describe_capacity_reservations").paginate(**kwargs):
            for r in page.get("CapacityReservations", []):
                out.append(Reservation(
                    id=r["CapacityReservationId"], instance_type=r.get("InstanceType", ""),
                    zone=r.get("AvailabilityZone", ""), state=r.get("State", ""),
                    total=int(r.get("TotalInstanceCount", 0)), available=int(r.get("AvailableInstanceCount", 0)),
                    kind=r.get("ReservationType", "default"), match=r.get("InstanceMatchCriteria", "open"),
                    owner=r.get("OwnerId", "")))
    except ClientError as exc:
        if error_code(exc) in ("InvalidCapacityReservationId.NotFound", "InvalidCapacityReservationId.Malformed"):
            return []
        raise AwsError(f"cannot read capacity reservations: {describe(exc)}") from exc
    except BotoCoreError as exc:
        raise AwsError(f"cannot read capacity reservations: {describe(exc)}") from exc
    return out
