"""``python -m infra.jobs``: a stack's job specs rendered ready to run by hand."""
