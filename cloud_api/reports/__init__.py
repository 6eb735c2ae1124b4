"""Z reports: the close of a till period as each device reported it (up/z_report)."""
