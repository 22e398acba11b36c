"""Site gateways: processes that run at a site and speak the v1 MQTT contract upward (`vpp gateway ...`)."""
