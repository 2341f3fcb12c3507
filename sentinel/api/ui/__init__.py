"""The web UI, served at / on [control].http: a live table of every process, a page per
process, and the actions a user's role allows (routes.py). Sessions and CSRF tokens
(sessions.py), what it remembers of each process (history.py), its live updates (live.py),
and its pages (pages.py, templates/, static/: no build step, nothing fetched at run time).
"""
