"""The AWS Lambda backend for sockerless."""

__version__ = "0.1.0"
