"""sockerless: a Docker-compatible API for serverless cloud capacity."""

__version__ = "0.1.0"
