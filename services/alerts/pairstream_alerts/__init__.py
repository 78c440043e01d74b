"""The alerts service: rules over the analytics topics, alert history and notifications."""
