"""Alerting: alert lifecycles for events that carry a dedupe key, and alert rules that
Herald evaluates itself on a schedule (see docs/alerting.md)."""
