"""The HTTP server: one ASGI app (``create_app``) over explicit services."""
