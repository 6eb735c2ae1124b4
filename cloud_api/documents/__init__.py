"""Licence documents: the paper trail of selling, moving and unsealing sealed licences."""
