"""Avisa relay node: model, envelopes, policy, store, pipeline, API and CLI."""
