"""Serving: the HTTP API (`lakestack serve`), with the stream collector under /v1/streams."""
