"""What patients browse before booking: departments, doctors, slots (registration)."""
from __future__ import annotations

import datetime as dt

from fastapi import APIRouter

from tuoguan.registration.v1 import registration_pb2

from ..convert import date_text, to_dict
from . import API_PREFIX
from ..deps import CallerServices
from ..models import DepartmentList, DoctorList, SlotList

router = APIRouter(prefix=API_PREFIX, tags=["catalogue"])


@router.get("/departments", response_model=DepartmentList)
async def departments(services: CallerServices):
    return to_dict(await services.registration.ListDepartments(registration_pb2.ListDepartmentsRequest()))


@router.get("/departments/{department_id}/doctors", response_model=DoctorList)
async def doctors(department_id: str, services: CallerServices):
    return to_dict(await services.registration.ListDoctors(
        registration_pb2.ListDoctorsRequest(department_id=department_id)))


@router.get("/slots", response_model=SlotList, summary="Released slots and their remaining capacity")
async def slots(
    services: CallerServices,
    department_id: str = "",
    doctor_id: str = "",
    from_date: dt.date | None = None,
    to_date: dt.date | None = None,
    only_available: bool = False,
):
    return to_dict(await services.registration.ListSlots(registration_pb2.ListSlotsRequest(
        department_id=department_id, doctor_id=doctor_id, only_available=only_available,
        from_date=date_text(from_date), to_date=date_text(to_date),
    )))
