"""What a person types: the command line (`cli`) and its bigger commands (`doctor`, `demo`, `models`).

Nothing below this package is imported by the daemon's request path; the commands call into it.
"""
