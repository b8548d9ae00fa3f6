"""Role agents: the tool loop, its transcript, and agents as supervised processes."""
