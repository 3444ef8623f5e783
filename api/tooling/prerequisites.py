"""The one error of the local tooling that reaches a user as a line of text."""


class PrerequisiteMissing(Exception):
    """Something the local tooling needs (a control plane, a built server) is not on this machine; the message says
    what and how to get it. Its own module: the CLI's error handling names it, and a daemon that imports that handling
    must not import the local control plane with it."""
