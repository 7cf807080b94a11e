"""Billing's rules and types: no I/O, no grpc/nameko/psycopg; time is a parameter."""
