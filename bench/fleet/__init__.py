"""Fleet simulation: N simulated terminals with real MQTT connections, the agent's outbox,
licence and roster code, against one Mosquitto and the real cloud worker (docs/fleet.md).

    python -m bench.fleet --devices 2000      # or: make fleet
"""
