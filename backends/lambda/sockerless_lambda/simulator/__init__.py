"""A local AWS Lambda simulator: moto for state, a runtime that really runs the command."""
