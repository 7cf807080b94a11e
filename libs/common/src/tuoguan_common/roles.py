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

# The contract's rate grades of the contractor's engineers, lowest first: an
# engineer's logged hours are priced by their grade (the "time" of the fee).
GRADES = ("junior", "intermediate", "senior", "expert")
