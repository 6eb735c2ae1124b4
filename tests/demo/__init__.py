"""The scripted end-to-end scenario behind `make demo`."""
