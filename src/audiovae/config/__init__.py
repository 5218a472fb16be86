"""Configuration: ``params.yaml`` loading, its schema, and the effective params each stage reads."""
