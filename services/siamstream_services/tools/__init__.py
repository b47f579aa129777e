"""Operator tools of the services: commands that prepare what the running processes serve."""
