"""The bottom layer: the types at the boundary, the errors, the settings."""
