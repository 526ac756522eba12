"""Project and contact rows from a ``/export/project/{id}`` body (SPEC §4.4.1, DECISIONS "claimx").

Contracts:

* :func:`project_rows` returns ``(projects, contacts)``. The project row carries the LEGACY superset
  of columns (nothing the API returns and SPEC maps is dropped); no row when ``project.projectId``
  is missing. Values are coerced (:mod:`domains.claimx.coerce`); timestamps are ISO strings.
* Contacts: one POLICYHOLDER when a primary e-mail exists; one CLAIM_REP per team member with a
  non-blank ``userName``.
* :func:`flag_row` builds a partial project row: only ``project_id``, ``event_id``, ``updated_at``
  and the given columns, so merging it never touches other columns.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from domains.claimx.coerce import boolean, integer, iso, parse_datetime, text, timestamp

Row = dict[str, Any]
Field = tuple[str, str, Callable[[Any], Any]]

_PROJECT_FIELDS: tuple[Field, ...] = (
    ("project_number", "projectNumber", text),
    ("master_file_name", "mfn", text),
    ("secondary_number", "secondaryNumber", text),
    ("created_date", "createdDate", timestamp),
    ("status", "status", text),
    ("date_of_loss", "dateOfLoss", timestamp),
    ("type_of_loss", "typeOfLoss", text),
    ("cause_of_loss", "causeOfLoss", text),
    ("loss_description", "lossDescription", text),
    ("year_built", "yearBuilt", integer),
    ("square_footage", "squareFootage", integer),
    ("date_received", "dateReceived", timestamp),
    ("date_contacted", "dateContacted", timestamp),
    ("planned_inspection_date", "plannedInspectionDate", timestamp),
    ("date_inspected", "dateInspected", timestamp),
    ("appointment_date", "appointmentDate", timestamp),
    ("custom_attribute1", "customAttribute1", text),
    ("custom_attribute2", "customAttribute2", text),
    ("custom_attribute3", "customAttribute3", text),
    ("custom_external_unique_id", "customExternalUniqueId", text),
)
_CUSTOMER_FIELDS: tuple[Field, ...] = (
    ("customer_first_name", "firstName", text),
    ("customer_last_name", "lastName", text),
    ("custom_business_name", "customBusinessName", text),
    ("business_line_type", "businessLineType", text),
)
_ADDRESS_FIELDS: tuple[Field, ...] = (
    ("street1", "street1", text),
    ("street2", "street2", text),
    ("city", "city", text),
    ("state_province", "stateProvince", text),
    ("zip_postcode", "zipPostcode", text),
    ("county", "county", text),
    ("country", "country", text),
)


def unwrap_project(body: Any) -> tuple[dict[str, Any], list[Any], Any]:
    """``(project, teamMembers, companyName)`` from a body with or without the outer ``data``."""
    data = body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), dict) else body
    if not isinstance(data, dict):
        return {}, [], None
    project = data.get("project")
    members = data.get("teamMembers")
    return (
        project if isinstance(project, dict) else {},
        members if isinstance(members, list) else [],
        data.get("companyName"),
    )


def map_fields(source: dict[str, Any], fields: tuple[Field, ...]) -> Row:
    return {column: convert(source.get(key)) for column, key, convert in fields}


def stamps(event_id: str, now: datetime, *, enriched: bool = True) -> Row:
    """The processing columns every fetched row carries."""
    moment = iso(now)
    row: Row = {"event_id": event_id, "created_at": moment, "updated_at": moment}
    if enriched:
        row["last_enriched_at"] = moment
    return row


def project_rows(
    body: Any, *, event_id: str, fallback_project_id: str, now: datetime
) -> tuple[list[Row], list[Row]]:
    """``(projects, contacts)`` for one project body (see module contract)."""
    project, members, company = unwrap_project(body)
    project_id = text(project.get("projectId"))
    customer = _dict(project.get("customerInformation"))
    phone = _first_dict(customer.get("phones"))
    email = primary_email(customer)
    projects: list[Row] = []
    if project_id is not None:
        row: Row = {"project_id": project_id}
        row.update(map_fields(project, _PROJECT_FIELDS))
        row.update(map_fields(customer, _CUSTOMER_FIELDS))
        row.update(map_fields(_dict(project.get("address")), _ADDRESS_FIELDS))
        row["primary_email"] = email
        row["primary_phone"] = text(phone.get("phoneNumber"))
        row["primary_phone_country_code"] = integer(phone.get("phoneCountryCode"))
        row["company_name"] = text(company)
        row.update(stamps(event_id, now))
        projects.append(row)
    contact_project = project_id or fallback_project_id
    contacts: list[Row] = []
    if email is not None:
        contacts.append(
            _contact(
                contact_project,
                email,
                "POLICYHOLDER",
                event_id,
                now,
                first_name=text(customer.get("firstName")),
                last_name=text(customer.get("lastName")),
                phone_number=text(phone.get("phoneNumber")),
                phone_country_code=integer(phone.get("phoneCountryCode")),
                is_primary_contact=True,
            )
        )
    for member in members:
        if not isinstance(member, dict) or text(member.get("userName")) is None:
            continue
        contacts.append(
            _contact(
                contact_project,
                text(member.get("userName")) or "",
                "CLAIM_REP",
                event_id,
                now,
                is_primary_contact=_flag(member.get("primaryContact")),
                master_file_name=text(member.get("mfn")),
            )
        )
    return projects, contacts


def primary_email(customer: dict[str, Any]) -> str | None:
    """The first e-mail flagged ``primary``, else the first e-mail (blank addresses skipped)."""
    emails = [
        e
        for e in customer.get("emails") or []
        if isinstance(e, dict) and text(e.get("emailAddress")) is not None
    ]
    chosen = next((e for e in emails if boolean(e.get("primary"))), emails[0] if emails else None)
    return text(chosen.get("emailAddress")) if chosen else None


def contact_row(
    project_id: str, email: str, contact_type: str, event_id: str, now: datetime, **values: Any
) -> Row:
    """A ``claimx_contacts`` row; unspecified person columns are ``None``."""
    return _contact(project_id, email, contact_type, event_id, now, **values)


def flag_row(project_id: str, event_id: str, now: datetime, **columns: Any) -> Row:
    """A partial project row: key, traceability, ``updated_at`` and exactly ``columns``."""
    return {"project_id": project_id, **columns, "event_id": event_id, "updated_at": iso(now)}


def _contact(
    project_id: str, email: str, contact_type: str, event_id: str, now: datetime, **values: Any
) -> Row:
    row: Row = {
        "project_id": project_id,
        "contact_email": email,
        "contact_type": contact_type,
        "first_name": None,
        "last_name": None,
        "phone_number": None,
        "phone_country_code": None,
        "is_primary_contact": False,
        "master_file_name": None,
        "task_assignment_id": None,
        "video_collaboration_id": None,
    }
    row.update(values)
    row.update(stamps(event_id, now))
    row["created_date"] = (parse_datetime(now) or now).date().isoformat()  # UTC day
    return row


def _flag(value: Any) -> bool:
    return bool(boolean(value))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return value[0]
    return {}
