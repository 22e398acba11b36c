"""OpenADR 2.0b VTN (the profile Japan's DR interface specification builds on), beside the 3.1 VTN.

It runs openleadr's own aiohttp server on its own port (it cannot be mounted in FastAPI) and serves
the same events the scheduler publishes for 3.1 VENs and MQTT sites, from the same database.
"""
