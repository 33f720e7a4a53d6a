"""The platform service: REST API, persistence, auth, audit and billing for live mode."""
