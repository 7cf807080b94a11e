"""Registration's rules and types: pure functions over plain data.

Nothing here does I/O or imports grpc, nameko or psycopg; the clock is a
parameter, so every rule is testable with plain values.
"""
