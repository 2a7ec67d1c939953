"""What supervisors read: the live wallboard, bot performance, historical and interval reports,
automated quality checks, the forecast and staffing, and Prometheus metrics.

Every figure is computed from the stored calls, queue entries, agent states and call events
(voicebot/store/models.py); nothing is kept in memory that a second node would not see.
"""
