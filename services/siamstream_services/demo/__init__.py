"""`siamstream demo`: the service on embedded defaults, one sequence streamed through it, a summary."""
