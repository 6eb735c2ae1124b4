"""People and their web access: accounts, sessions, e-mailed links, the audit trail."""
