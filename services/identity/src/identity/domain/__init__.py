"""Identity's rules: what a valid account looks like, the password policy and
the sign-in throttle. Pure: no I/O, time is a parameter."""
