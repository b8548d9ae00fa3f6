"""The orchestrator: the autonomous tier that turns tickets into merged work, tick by tick."""
