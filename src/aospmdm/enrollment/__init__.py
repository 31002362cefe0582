"""Enrollment: profiles, their tokens, the provisioning payload and its QR code."""
