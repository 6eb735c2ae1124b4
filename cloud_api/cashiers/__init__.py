"""Cashiers in the cloud: the cashier book of each company (models.py), its rules
(service.py), operator codes (codes.py) and the rosters pushed to devices (roster.py).
The HTTP layer is cloud_api/api/cashiers.py."""
