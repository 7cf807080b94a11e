"""Ticketing's pure rules and types: no I/O, no framework imports.

calendar   service hours, working days, service-time arithmetic
priority   impact x urgency -> priority
sla        the SLA state of a ticket from its events
lifecycle  statuses, actions, actors, auto-close
worklog    engineers' time on tickets
alerts     Alertmanager webhook payloads
"""
