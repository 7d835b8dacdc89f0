"""Offline data: collection with behaviour policies, the transitions schema, state interning."""
