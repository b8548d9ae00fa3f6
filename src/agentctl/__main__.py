"""``python -m agentctl``: how parents spawn child tiers (``sys.executable -m agentctl``)."""

from agentctl.cli import main

if __name__ == "__main__":
    main()
