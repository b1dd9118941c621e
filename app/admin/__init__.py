"""The admin API's service layer: what the admin endpoints do, without HTTP.

Functions take a `Session` and plain values and return models or dataclasses; a refusal is an
`AdminError` (`errors`), which the admin routes (`app.api.deps.AdminRoute`) turn into the answer.
Nothing here imports FastAPI or `app.api`.
"""
