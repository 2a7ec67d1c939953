"""Automated quality checks of finished calls: rules in ``quality/rules.yaml`` (rules.py), the
checks they name (checks.py), and the reviewer that scores each call and stores its review
with a post-call summary (review.py). docs/quality.md describes the file."""
