"""GitHub as the forge: GraphQL documents, pushes through GIT_ASKPASS, the ``Forge``."""
