"""Declarative pipelines: the engine, its step kinds and actions, and the pipeline process."""
