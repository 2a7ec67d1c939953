"""Who may do what: users (agents, supervisors, admins), passwords, sessions, the audit log."""
