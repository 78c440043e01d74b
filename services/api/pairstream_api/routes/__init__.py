"""One ``APIRouter`` per resource, mounted under ``/api/v1`` by :func:`..main.create_app`."""

PREFIX = "/api/v1"
