"""The roles a token carries: plain names, importable by any domain module."""

PATIENT = "patient"
REGISTRATION_OFFICE = "registration_office"
ADMIN = "admin"
CLINICIAN = "clinician"
ENGINEER = "engineer"
DISPATCHER = "dispatcher"
CONSULTANT = "consultant"
FINANCE = "finance"
DEVICE = "device"
# Services acting on their own behalf (a worker calling another service).
SERVICE = "service"
ROLES = frozenset(
    {PATIENT, REGISTRATION_OFFICE, ADMIN, CLINICIAN, ENGINEER, DISPATCHER, CONSULTANT, FINANCE, DEVICE, SERVICE}
)
