"""Identity's rules: what a valid account looks like, the password policy,
the sign-in throttle and password reset codes. Pure: no I/O, time is a
parameter."""
