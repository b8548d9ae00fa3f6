"""The main session: a chat with the top model that delegates and hears back."""
