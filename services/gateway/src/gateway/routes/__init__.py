"""The /api/v1 routes, one module per audience. Handlers parse, call one
service (the caller's token travels with the call) and reply."""

# Each router carries the full prefix itself (not include_router's prefix):
# the route template the metrics and spans are labelled with is then the
# whole path, e.g. /api/v1/bookings/{booking_id}.
API_PREFIX = "/api/v1"
