"""ssdcore.serve: the OpenAI-compatible HTTP server (ssdcore serve)."""
