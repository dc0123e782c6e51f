"""pytest plugin: the ``lambda_simulator`` fixture (placeholder while the simulator is built)."""
