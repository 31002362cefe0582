"""The directory of workers who sign in on shared devices, and their sessions."""
