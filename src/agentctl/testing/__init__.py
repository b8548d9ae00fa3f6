"""Test kit shipped with agentctl: fixtures and (later) scripted servers on 127.0.0.1.

Used by agentctl's own tests, its benchmarks and ``agentctl demo``, and by users who
test their pipelines offline. Product code never imports it.
"""
