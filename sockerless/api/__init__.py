"""The internal API (``/internal/v1``): described once in :mod:`.routes`, served by :mod:`.server`,
called by :mod:`.client`, documented by :mod:`.openapi`."""
