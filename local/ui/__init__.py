"""`mme ui`: a small local web view over the local state (the `ui` extra: Starlette and Jinja2).

state     what the pages show, read through the local runtime's own modules (no web code)
security  the loopback Host check, the cross-site check for forms, and the response headers
app       the Starlette application: one route per page, approvals through `local.approval`
cli       the `ui` click command that `mme` mounts
"""
