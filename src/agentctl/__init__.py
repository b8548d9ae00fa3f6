"""agentctl: run a team of LLM agents on real software work, from the command line."""

__version__ = "0.1.0.dev0"
