"""Tenancy of the cloud service: owner -> partners -> companies -> points of sale, users, tokens."""
