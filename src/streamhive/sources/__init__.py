"""Pulled sources: paths fed by the server itself from cameras and other servers (``source:``)."""
