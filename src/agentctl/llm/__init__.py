"""Calling models: one small provider protocol, lazily imported vendor adapters.

``make_provider(name, model)`` returns a ``Provider`` for a configured model; the
vendor SDK is imported only then (``import anthropic`` alone costs ~0.9 s).
Adapters live in ``anthropic_messages.py``, ``openai_chat.py`` and
``openai_responses.py`` and translate vendor errors into ``agentctl.errors``.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from agentctl.errors import MissingKeyError
from agentctl.llm.types import OnEvent, Request, Response

if TYPE_CHECKING:
    from agentctl.config.schema import Model

__all__ = ["PROVIDERS", "Provider", "make_provider", "resolve_key"]

# (provider, api) → "module:Class"; any "module:Class" path also works in a model's provider.
PROVIDERS: dict[tuple[str, str], str] = {
    ("anthropic", "messages"): "agentctl.llm.anthropic_messages:AnthropicProvider",
    ("openai", "chat"): "agentctl.llm.openai_chat:ChatProvider",
    ("openai", "responses"): "agentctl.llm.openai_responses:ResponsesProvider",
}

# Sent to servers that need no key: the OpenAI SDK refuses to start without one.
NO_KEY = "agentctl-no-key"


class Provider(Protocol):
    """One configured model behind one API."""

    def complete(
        self, request: Request, *, on_event: OnEvent | None = None, stream: bool = True
    ) -> Response:
        """Send ``request``; deliver deltas to ``on_event`` while streaming; return the answer.

        Raises ``agentctl.errors.ProviderError`` subclasses, never vendor exceptions.
        Does not retry: ``agentctl.llm.call`` owns retries, fallbacks and deadlines.
        """
        ...


def resolve_key(name: str, model: Model, environ: Mapping[str, str] | None = None) -> str | None:
    """The API key for ``model`` (from the key store, or ``environ`` if given); a clear
    error when unset."""
    env = model.key_env
    if env is None:
        return None
    if environ is None:
        from agentctl import keystore

        value = keystore.get(env) or ""
    else:
        value = environ.get(env, "")
    if not value:
        raise MissingKeyError(
            f"model {name!r} needs an API key in ${env}, which is not set",
            hint=f"export {env}=... or point the role at another model (agentctl models list)",
        )
    return value


def make_provider(name: str, model: Model, environ: Mapping[str, str] | None = None) -> Provider:
    """Build the provider for the configured model ``name`` (imports its SDK now)."""
    key = resolve_key(name, model, environ)
    target = PROVIDERS[(model.provider, model.resolved_api)]
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    provider: Provider = cls(name, model, key or NO_KEY)
    return provider
