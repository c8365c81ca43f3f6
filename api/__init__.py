"""The publisher API: validates events, records them and publishes them. It never sends."""
