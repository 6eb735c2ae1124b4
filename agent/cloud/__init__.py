"""The agent's link to the cloud: MQTT client, durable outbox, inbound state and commands."""
