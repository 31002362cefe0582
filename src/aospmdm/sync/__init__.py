"""The device side of the server: all of /device/v1 (enroll, check-in, and later results,
wait, logs and sessions)."""
