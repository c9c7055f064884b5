"""Errors of the IR layer."""


class IRError(Exception):
    """A misuse of the IR API (e.g. removing a node that still has uses): a bug in the caller."""
